"""pipeline(...) accepts Hugging Face's calls and returns Hugging Face's output format."""

import pytest
import torch

import minitransformer as mt
from minitransformer.data import ascii_tokenizer, seq2seq_tokenizer
from minitransformer.tools.pipelines import pipeline


def gpt_pair():
    tok = ascii_tokenizer()
    cfg = mt.TransformerConfig(vocab_size=tok.vocab_size, d_model=32, n_heads=2, n_layers=1, max_len=128)
    return mt.GPT(cfg).eval(), tok


def test_text_generation_runs_the_documented_example():
    generator = pipeline("text-generation", model=gpt_pair())
    torch.manual_seed(0)
    out = generator(
        "ROMEO:", max_length=40, num_return_sequences=3, do_sample=True, top_k=50, top_p=0.95, num_beams=5
    )
    assert len(out) == 3 and all(set(o) == {"generated_text"} for o in out)
    assert all(o["generated_text"].startswith("ROMEO:") and len(o["generated_text"]) <= 40 for o in out)
    new_only = generator("ROMEO:", max_new_tokens=10, return_full_text=False)
    assert len(new_only[0]["generated_text"]) == 10
    assert [len(x) for x in generator(["a", "bc"], max_new_tokens=3)] == [1, 1]  # a list per prompt


def test_fill_mask_format_and_order():
    tok = ascii_tokenizer(special_tokens=("[PAD]", "[MASK]"))
    model = mt.MaskedLM(mt.TransformerConfig(vocab_size=tok.vocab_size, d_model=32, n_heads=2, n_layers=1))
    fill = pipeline("fill-mask", model=model, tokenizer=tok)
    out = fill("to be or n[MASK]t to be", top_k=4)
    assert [set(d) for d in out] == [{"score", "token", "token_str", "sequence"}] * 4
    scores = [d["score"] for d in out]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1
    assert all(d["sequence"] == "to be or n" + d["token_str"] + "t to be" for d in out)
    assert all(d["token"] not in tok.special_token_ids for d in out)
    with pytest.raises(ValueError, match="must contain \\[MASK\\]"):
        fill("no mask here")


def test_text2text_returns_generated_text():
    tok = seq2seq_tokenizer()
    model = mt.Seq2SeqTransformer(
        mt.TransformerConfig(vocab_size=tok.vocab_size, d_model=32, n_heads=2, n_layers=1, max_len=24)
    )
    out = pipeline("text2text-generation", model=(model, tok))("March 5, 2021", max_new_tokens=5)
    assert len(out) == 1 and isinstance(out[0]["generated_text"], str) and len(out[0]["generated_text"]) <= 5


@pytest.mark.parametrize(
    "args,error,match",
    [
        (("translation",), ValueError, "unknown task 'translation'"),
        (("fill-mask", gpt_pair()), TypeError, "needs a MaskedLM"),
        (("text-generation", gpt_pair()[0]), ValueError, "tokenizer is required"),
        (("text-generation", "gpt-5"), FileNotFoundError, "neither a bundled model"),
    ],
)
def test_bad_pipeline_arguments(args, error, match):
    with pytest.raises((error, FileNotFoundError), match=match):
        pipeline(*args)
