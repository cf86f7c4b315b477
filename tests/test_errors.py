"""Every public entry point answers bad input with a specific exception whose message names the
argument, the value received and what is allowed.

The table below is the single source of docs/errors.md: `test_docs_table_is_current` fails when
the two disagree (regenerate with `python tests/test_errors.py > docs/errors.md`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import minitransformer as mt
from minitransformer import widgets
from minitransformer.data import clm_batch, date_pairs, load_text, pad_batch, train_val_split
from minitransformer.tokenizers import GPT2_SPLIT_PATTERN, tokenizer_from_dict
from minitransformer.tools.pipelines import pipeline
from minitransformer.training import TrainConfig

DOCS = Path(__file__).resolve().parents[1] / "docs" / "errors.md"


def gpt():
    return mt.GPT(mt.TransformerConfig(vocab_size=20, d_model=16, n_heads=2, n_layers=1, max_len=8)).eval()


def ids(*shape):
    return torch.zeros(*shape, dtype=torch.long)


def qkv():
    return torch.randn(1, 1, 3, 4), torch.randn(1, 1, 3, 4), torch.randn(1, 1, 3, 4)


CHAR = mt.CharTokenizer("abc")

# (entry point, what is wrong, call, exception, message fragment)
CASES = [
    (
        "TransformerConfig",
        "d_model not divisible by n_heads",
        lambda: mt.TransformerConfig(d_model=30, n_heads=4),
        mt.ConfigError,
        "d_model=30 must be divisible by n_heads=4",
    ),
    (
        "TransformerConfig",
        "non-positive size",
        lambda: mt.TransformerConfig(n_layers=0),
        mt.ConfigError,
        "n_layers must be a positive integer, got 0",
    ),
    (
        "TransformerConfig",
        "negative vocabulary",
        lambda: mt.TransformerConfig(vocab_size=-1),
        mt.ConfigError,
        "vocab_size must be a positive integer, got -1",
    ),
    (
        "TransformerConfig",
        "dropout out of range",
        lambda: mt.TransformerConfig(dropout=1.0),
        mt.ConfigError,
        "dropout must be a number in [0, 1), got 1.0",
    ),
    (
        "TransformerConfig",
        "unknown positional encoding",
        lambda: mt.TransformerConfig(pos_encoding="alibi"),
        mt.ConfigError,
        "pos_encoding must be one of",
    ),
    (
        "TransformerConfig",
        "odd head size with RoPE",
        lambda: mt.TransformerConfig(d_model=6, n_heads=2, pos_encoding="rope"),
        mt.ConfigError,
        "needs an even d_head",
    ),
    (
        "TransformerConfig.from_dict",
        "unknown field",
        lambda: mt.TransformerConfig.from_dict({"n_embd": 4}),
        mt.ConfigError,
        "unknown config fields ['n_embd']",
    ),
    (
        "scaled_dot_product_attention",
        "integer q",
        lambda: mt.scaled_dot_product_attention(torch.ones(1, 1, 3, 4, dtype=torch.long), *qkv()[1:]),
        TypeError,
        "q must be a floating-point tensor",
    ),
    (
        "scaled_dot_product_attention",
        "q and k of different widths",
        lambda: mt.scaled_dot_product_attention(
            torch.randn(1, 1, 3, 4), torch.randn(1, 1, 3, 5), torch.randn(1, 1, 3, 4)
        ),
        mt.ShapeError,
        "q and k must share their last (d_head) axis",
    ),
    (
        "scaled_dot_product_attention",
        "float mask",
        lambda: mt.scaled_dot_product_attention(*qkv(), mask=torch.ones(3, 3)),
        TypeError,
        "mask must be a bool tensor (True = may attend)",
    ),
    (
        "scaled_dot_product_attention",
        "mask of the wrong shape",
        lambda: mt.scaled_dot_product_attention(*qkv(), mask=torch.ones(2, 3, dtype=torch.bool)),
        mt.ShapeError,
        "does not broadcast",
    ),
    ("causal_mask", "more queries than keys", lambda: mt.causal_mask(4, 2), mt.ShapeError, "t_q <= t_k"),
    (
        "padding_mask",
        "3-D attention mask",
        lambda: mt.padding_mask(torch.ones(1, 2, 3)),
        mt.ShapeError,
        "attention_mask must have shape (batch, seq_len)",
    ),
    (
        "padding_mask",
        "values other than 0/1",
        lambda: mt.padding_mask(torch.tensor([[0, 2]])),
        ValueError,
        "attention_mask must hold only 0 (padding) and 1 (real token)",
    ),
    ("GPT.forward", "ids as a list", lambda: gpt()([[1, 2]]), TypeError, "input_ids must be a torch tensor"),
    ("GPT.forward", "float ids", lambda: gpt()(torch.ones(1, 2)), TypeError, "integer token ids"),
    ("GPT.forward", "1-D ids", lambda: gpt()(ids(3)), mt.ShapeError, "use input_ids[None]"),
    ("GPT.forward", "empty sequence", lambda: gpt()(ids(1, 0)), mt.ShapeError, "is empty"),
    (
        "GPT.forward",
        "id outside the vocabulary",
        lambda: gpt()(torch.tensor([[3, 25]])),
        ValueError,
        "contains id 25, outside the vocabulary [0, 19]",
    ),
    (
        "GPT.forward",
        "longer than the context",
        lambda: gpt()(ids(1, 9)),
        mt.ShapeError,
        "longer than the model's context max_len=8",
    ),
    (
        "GPT.forward",
        "attention_mask of the wrong shape",
        lambda: gpt()(ids(1, 4), torch.ones(1, 3)),
        mt.ShapeError,
        "attention_mask has shape (1, 3), expected (1, 4)",
    ),
    (
        "Seq2SeqTransformer.forward",
        "src_mask of the wrong shape",
        lambda: mt.Seq2SeqTransformer(gpt().config)(ids(1, 4), ids(1, 2), src_mask=torch.ones(1, 5)),
        mt.ShapeError,
        "src_mask has shape",
    ),
    (
        "GPT.from_hf_gpt2",
        "missing file",
        lambda: mt.GPT.from_hf_gpt2("no/such/model.safetensors"),
        FileNotFoundError,
        "no GPT-2 weights at",
    ),
    (
        "GPT.from_hf_gpt2",
        "state dict without n_heads",
        lambda: mt.GPT.from_hf_gpt2(
            {
                "wte.weight": torch.zeros(4, 4),
                "wpe.weight": torch.zeros(4, 4),
                "h.0.mlp.c_fc.weight": torch.zeros(4, 8),
            }
        ),
        mt.ConfigError,
        "pass n_heads",
    ),
    (
        "CharTokenizer.encode",
        "unknown character",
        lambda: CHAR.encode("abz"),
        mt.UnknownTokenError,
        "character 'z' at position 2 is not in the vocabulary",
    ),
    (
        "CharTokenizer.decode",
        "id outside the vocabulary",
        lambda: CHAR.decode([0, 7]),
        ValueError,
        "token id 7 is outside the vocabulary",
    ),
    (
        "BPETokenizer.train",
        "vocab_size below 256",
        lambda: mt.BPETokenizer.train("abc", 100),
        ValueError,
        "vocab_size must be an int >= 256",
    ),
    (
        "load_tokenizer",
        "missing file",
        lambda: mt.load_tokenizer("no/such/tokenizer.json"),
        mt.CheckpointError,
        "no/such/tokenizer.json",
    ),
    ("load_text", "unknown corpus", lambda: load_text("wikipedia"), ValueError, "known names are"),
    (
        "train_val_split",
        "fraction out of range",
        lambda: train_val_split("abc", 1.5),
        ValueError,
        "val_fraction must be a number in (0, 1)",
    ),
    (
        "clm_batch",
        "data shorter than the context",
        lambda: clm_batch(torch.arange(5), 2, 8),
        ValueError,
        "too short for context=8",
    ),
    (
        "pad_batch",
        "unknown side",
        lambda: pad_batch([[1]], 0, side="middle"),
        ValueError,
        "side must be 'left' or 'right', got 'middle'",
    ),
    (
        "date_pairs",
        "negative count",
        lambda: date_pairs(-1),
        ValueError,
        "n must be an integer >= 0, got -1",
    ),
    (
        "mask_tokens",
        "tokenizer without [MASK]",
        lambda: mt.mask_tokens(ids(1, 4), CHAR),
        ValueError,
        "needs a tokenizer with a [MASK] token",
    ),
    (
        "clm_loss",
        "logits and targets disagree",
        lambda: mt.clm_loss(torch.randn(1, 3, 5), ids(1, 4)),
        mt.ShapeError,
        "targets must be a (B, T) tensor matching logits",
    ),
    (
        "top_p_filter",
        "p outside (0, 1]",
        lambda: mt.top_p_filter(torch.randn(1, 5), 1.5),
        ValueError,
        "p must be a number in (0, 1], got 1.5",
    ),
    (
        "top_k_filter",
        "negative k",
        lambda: mt.top_k_filter(torch.randn(1, 5), -1),
        ValueError,
        "k must be an integer >= 0, got -1",
    ),
    (
        "apply_temperature",
        "zero temperature",
        lambda: mt.apply_temperature(torch.randn(1, 5), 0.0),
        ValueError,
        "temperature must be a finite number > 0, got 0.0",
    ),
    (
        "min_p_filter",
        "p outside (0, 1]",
        lambda: mt.min_p_filter(torch.randn(1, 5), 0.0),
        ValueError,
        "p must be a number in (0, 1], got 0.0",
    ),
    (
        "process_logits",
        "NaN logits",
        lambda: mt.process_logits(torch.full((1, 5), float("nan")), ids(1, 2), mt.LogitsSettings(), True),
        ValueError,
        "NaN",
    ),
    (
        "generate",
        "temperature <= 0 with sampling",
        lambda: mt.generate(gpt(), ids(1, 2), do_sample=True, temperature=0.0, max_new_tokens=2),
        ValueError,
        "temperature must be a finite number > 0, got 0.0",
    ),
    (
        "generate",
        "num_return_sequences > num_beams",
        lambda: mt.generate(gpt(), ids(1, 2), num_beams=2, num_return_sequences=3, max_new_tokens=2),
        ValueError,
        "num_return_sequences",
    ),
    (
        "generate",
        "negative max_new_tokens",
        lambda: mt.generate(gpt(), ids(1, 2), max_new_tokens=-1),
        ValueError,
        "max_new_tokens",
    ),
    (
        "generate",
        "early_stopping not True/False/'never'",
        lambda: mt.generate(gpt(), ids(1, 2), num_beams=2, early_stopping="sometimes", max_new_tokens=2),
        ValueError,
        "early_stopping",
    ),
    (
        "generate",
        "empty prompt without a BOS token",
        lambda: mt.generate(gpt(), ids(1, 0), max_new_tokens=2),
        ValueError,
        "bos_token_id",
    ),
    (
        "generate",
        "assistant_model with sampling",
        lambda: mt.generate(gpt(), ids(1, 2), assistant_model=gpt(), do_sample=True, max_new_tokens=2),
        mt.AssistantError,
        "assistant_model: assisted generation needs greedy search",
    ),
    ("pipeline", "unknown task", lambda: pipeline("translation"), ValueError, "unknown task 'translation'"),
    (
        "load_pretrained",
        "unknown name",
        lambda: mt.load_pretrained("gpt2"),
        ValueError,
        "unknown pretrained model 'gpt2'",
    ),
    (
        "load_checkpoint",
        "missing file",
        lambda: mt.load_checkpoint("no/such/file.safetensors"),
        FileNotFoundError,
        "no checkpoint at",
    ),
    (
        "TrainConfig",
        "non-positive steps",
        lambda: TrainConfig(steps=0),
        mt.ConfigError,
        "steps must be a positive integer, got 0",
    ),
    (
        "TrainConfig",
        "unknown precision",
        lambda: TrainConfig(precision="fp8"),
        mt.ConfigError,
        "precision must be one of",
    ),
    # ----- files and hostile inputs (reliability)
    (
        "load_checkpoint",
        "a path that is not a file path",
        lambda: mt.load_checkpoint(123),
        TypeError,
        "path must be a file path",
    ),
    (
        "load_checkpoint",
        "the meta device, which holds no weights",
        lambda: mt.load_checkpoint(mt.tools.pretrained.pretrained_path("dates-seq2seq"), map_location="meta"),
        ValueError,
        "would load no weights at all",
    ),
    (
        "save_checkpoint",
        "an integer storage dtype",
        lambda: mt.save_checkpoint("unused.safetensors", gpt(), dtype=torch.int8),
        ValueError,
        "dtype must be None, torch.float32, torch.float16 or torch.bfloat16",
    ),
    (
        "save_checkpoint",
        "metrics that are not JSON",
        lambda: mt.save_checkpoint("unused.safetensors", gpt(), metrics={"loss": torch.ones(1)}),
        ValueError,
        "metrics must hold only JSON values",
    ),
    (
        "save_checkpoint",
        "a folder as the destination",
        lambda: mt.save_checkpoint(".", gpt()),
        mt.CheckpointError,
        "will not save the checkpoint to",
    ),
    (
        "TransformerConfig",
        "infinite layer_norm_eps",
        lambda: mt.TransformerConfig(layer_norm_eps=float("inf")),
        mt.ConfigError,
        "layer_norm_eps must be > 0 and finite",
    ),
    (
        "load_pretrained",
        "a list instead of a name",
        lambda: mt.load_pretrained(["x"]),
        TypeError,
        "name must be the str name of a bundled model",
    ),
    (
        "tokenizer_from_dict",
        "a split pattern the package never writes",
        lambda: tokenizer_from_dict({"type": "bpe", "merges": [], "special_tokens": [], "pattern": "(a|aa)+$"}),
        mt.CheckpointError,
        "'pattern' must be one of the patterns minitransformer writes",
    ),
    (
        "tokenizer_from_dict",
        "chained merges whose tokens would fill memory",
        lambda: tokenizer_from_dict({"type": "bpe", "merges": [[97, 97]] + [[256 + k, 256 + k] for k in range(40)],
                                     "special_tokens": [], "pattern": GPT2_SPLIT_PATTERN}),
        mt.CheckpointError,
        "MAX_VOCAB_BYTES",
    ),
    (
        "CharTokenizer",
        "a special token over 64 characters",
        lambda: mt.CharTokenizer("a", special_tokens=["x" * 65]),
        ValueError,
        "MAX_SPECIAL_TOKEN_LENGTH",
    ),
    (
        "BPETokenizer.encode",
        "a split pattern that skips characters",
        lambda: mt.BPETokenizer(pattern=r"\w+").encode("hi there"),
        ValueError,
        "skips ' ' at position 2",
    ),
    # ----- generation under huge and odd requests (reliability)
    ("generate", "more beams than memory can hold",
     lambda: mt.generate(gpt(), ids(1, 2), num_beams=10**9, max_new_tokens=2), mt.ConfigError, "num_beams=1000000000"),
    ("generate", "more samples than memory can hold",
     lambda: mt.generate(gpt(), ids(1, 2), do_sample=True, num_return_sequences=10**9, max_new_tokens=2),
     mt.ConfigError, "num_return_sequences=1000000000"),
    ("generate", "beam sampling asks for more sequences than are possible",
     lambda: mt.generate(gpt(), ids(1, 2), num_beams=3, num_return_sequences=3, do_sample=True, top_k=1,
                         max_new_tokens=1), ValueError, "found only 2 possible sequences"),
    ("generate", "length_penalty beyond float32",
     lambda: mt.generate(gpt(), ids(1, 2), num_beams=2, length_penalty=1e300, max_new_tokens=3),
     mt.ConfigError, "length_penalty=1e+300 is too extreme"),
    ("generate", "no_repeat_ngram_size bans every token",
     lambda: mt.generate(mt.GPT(mt.TransformerConfig(vocab_size=4, d_model=8, n_heads=2, n_layers=1, max_len=8)),
                         ids(1, 2), no_repeat_ngram_size=1, max_new_tokens=5), ValueError,
     "no_repeat_ngram_size=1 bans every token"),
    ("generate", "temperature so small that the scores overflow",
     lambda: mt.generate(gpt(), ids(1, 2), do_sample=True, temperature=1e-45, max_new_tokens=2), ValueError,
     "at the temperature stage"),
    ("generate", "a streamer without put/end",
     lambda: mt.generate(gpt(), ids(1, 2), streamer=object(), max_new_tokens=2), TypeError,
     "streamer must have put(ids) and end() methods"),
    ("generate", "ids on the meta device",
     lambda: mt.generate(gpt(), ids(1, 2).to("meta"), max_new_tokens=2), ValueError, "input_ids is on the meta device"),
    # ----- explorers, pipelines and GPT-2 files
    ("SamplingExplorer", "max_new_tokens out of the slider's range",
     lambda: widgets.SamplingExplorer(*mt.load_pretrained("shakespeare-char"), max_new_tokens=-1),
     mt.ConfigError, "max_new_tokens must be an integer in [1, 200], got -1"),
    ("SamplingExplorer", "a prompt that is not text",
     lambda: widgets.SamplingExplorer(*mt.load_pretrained("shakespeare-char"), prompt=5), TypeError,
     "prompt must be a string"),
    ("BeamSearchExplorer", "fewer than two beams",
     lambda: widgets.BeamSearchExplorer(*mt.load_pretrained("shakespeare-char"), num_beams=1), mt.ConfigError,
     "num_beams must be an integer in [2, 6]"),
    ("pipeline", "fill-mask top_k beyond the fillable tokens",
     lambda: pipeline("fill-mask")("a[MASK]", top_k=10**6), mt.ConfigError, "top_k must be an integer in [1, "),
    ("pipeline", "a list holding something other than text",
     lambda: pipeline("fill-mask")(["a[MASK]", 3]), TypeError, "got 3 at index 1"),
    ("pipeline", "an empty text to transform",
     lambda: pipeline("text2text-generation")(""), ValueError, "the input text is empty"),
    ("BPETokenizer.from_gpt2", "a path that does not exist",
     lambda: mt.BPETokenizer.from_gpt2("no/such/folder"), FileNotFoundError, "no GPT-2 tokenizer at"),
]


@pytest.mark.parametrize("entry,problem,call,error,message", CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_bad_input_gets_a_clear_error(entry, problem, call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value), f"{entry} ({problem}): message {str(info.value)!r} lacks {message!r}"


def test_there_are_at_least_40_cases():
    assert len(CASES) >= 40


def docs_table() -> str:
    lines = [
        "# What each invalid input gets",
        "",
        "Generated from `tests/test_errors.py`, which checks every row: regenerate with",
        "`python tests/test_errors.py > docs/errors.md`. Every exception below that is not a built-in is a",
        "subclass of `minitransformer.MiniTransformerError` *and* of the built-in named in parentheses, so",
        "`except ValueError` keeps working.",
        "",
        "| entry point | invalid input | exception | message contains |",
        "|---|---|---|---|",
    ]
    for entry, problem, _, error, message in CASES:
        base = next(
            (b.__name__ for b in error.__mro__[1:] if b.__module__ == "builtins" and b is not Exception), ""
        )
        kind = error.__name__ if error.__module__ == "builtins" else f"{error.__name__} ({base})"
        escaped = message.replace("|", "\\|")
        lines.append(f"| `{entry}` | {problem} | {kind} | `{escaped}` |")
    return "\n".join(lines) + "\n"


def test_docs_table_is_current():
    assert DOCS.read_text() == docs_table(), (
        "docs/errors.md is stale: python tests/test_errors.py > docs/errors.md"
    )


if __name__ == "__main__":
    sys.stdout.write(docs_table())
