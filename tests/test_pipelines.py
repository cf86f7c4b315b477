"""pipeline(...) accepts Hugging Face's calls and returns Hugging Face's output format."""

import pytest
import torch

import minitransformer as mt
from minitransformer.data import ascii_tokenizer, seq2seq_tokenizer
from minitransformer.errors import ConfigError
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
        ((["text-generation"],), ValueError, r"unknown task \['text-generation'\]; the tasks are"),
        (("fill-mask", gpt_pair()), TypeError, "needs a MaskedLM"),
        (("text-generation", gpt_pair()[0]), ValueError, "tokenizer is required"),
        (("text-generation", "gpt-5"), FileNotFoundError, "neither a bundled model"),
    ],
)
def test_bad_pipeline_arguments(args, error, match):
    with pytest.raises((error, FileNotFoundError), match=match):
        pipeline(*args)


def fill_pair():
    tok = ascii_tokenizer(special_tokens=("[PAD]", "[MASK]"))
    model = mt.MaskedLM(mt.TransformerConfig(vocab_size=tok.vocab_size, d_model=32, n_heads=2, n_layers=1))
    return model.eval(), tok


@pytest.mark.parametrize("top_k", [96 + 1, 96 + 2, 10**6, 0, -1, 2.5, True, "5"])
def test_fill_mask_top_k_beyond_the_fillable_tokens_is_named(top_k):
    fill = pipeline("fill-mask", model=fill_pair())  # 98 tokens, 2 of them special: 96 can fill
    with pytest.raises(ConfigError, match=r"top_k must be an integer in \[1, 96\] \(.*98 .* less 2 special ones\), got"):
        fill("a[MASK]", top_k=top_k)
    out = fill("a[MASK]", top_k=96)  # the largest allowed: every fillable token, no special one
    assert len(out) == 96 and not {d["token"] for d in out} & set(fill.tokenizer.special_token_ids)


@pytest.mark.parametrize(
    "task, inputs, kwargs, error, match",
    [
        ("fill-mask", ["a[MASK]", 3], {}, TypeError, "a list of strings, got 3 at index 1"),
        ("fill-mask", "ab " * 100 + "[MASK]", {}, ValueError, r"301 tokens, more than .*max_len=256"),
        ("text2text-generation", "", {}, ValueError, "input text is empty"),
        ("text2text-generation", "March 5, 2021 " * 4, {}, ValueError, r"56 tokens, .*\(max_len=24\)"),
        ("text-generation", "ab", {"return_full_text": "no"}, TypeError, "return_full_text must be True or False"),
        ("text-generation", b"ab", {}, TypeError, "a string or a list of strings, got bytes"),
    ],
)
def test_bad_pipeline_inputs_are_named(task, inputs, kwargs, error, match):
    pair = {"fill-mask": fill_pair, "text-generation": gpt_pair}.get(task, seq2seq_pair)()
    with pytest.raises(error, match=match):
        pipeline(task, model=pair)(inputs, **kwargs)


def test_an_empty_list_of_inputs_gives_an_empty_list():
    assert pipeline("fill-mask", model=fill_pair())([]) == []
    assert pipeline("text-generation", model=gpt_pair())([], max_new_tokens=2) == []


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(tokenizer="abc"), TypeError, "tokenizer must be a minitransformer tokenizer, got 'abc'"),
        (dict(device="gpu"), ValueError, "device must be a torch device such as 'cpu' or 'cuda', got 'gpu'"),
        (dict(device=3.5), ValueError, "device must be a torch device"),
    ],
)
def test_bad_pipeline_model_arguments_are_named(kwargs, error, match):
    model, tokenizer = fill_pair()
    with pytest.raises(error, match=match):
        pipeline("fill-mask", **{"model": model, "tokenizer": tokenizer, **kwargs})


def seq2seq_pair():
    tok = seq2seq_tokenizer()
    cfg = mt.TransformerConfig(vocab_size=tok.vocab_size, d_model=32, n_heads=2, n_layers=1, max_len=24)
    return mt.Seq2SeqTransformer(cfg).eval(), tok


def test_a_list_of_prompts_is_batched_and_gives_what_each_prompt_gets_alone(monkeypatch):
    from minitransformer.tools import pipelines

    gen = pipeline("text-generation", model="shakespeare-char")
    prompts = ["ROMEO:", "JULIET", "ROMEO: O", "KING:"] * 5  # lengths 6, 6, 8, 5
    calls = []
    original = pipelines.generate
    monkeypatch.setattr(pipelines, "generate", lambda *a, **k: calls.append(a[1].shape) or original(*a, **k))
    together = gen(prompts, max_new_tokens=8, num_beams=2, num_return_sequences=2)
    assert len(calls) == 3  # one call per distinct prompt length
    monkeypatch.setattr(pipelines, "generate", original)
    for prompt, got in zip(prompts[:4], together[:4], strict=True):
        assert got == gen(prompt, max_new_tokens=8, num_beams=2, num_return_sequences=2)
    assert [len(r) for r in together] == [2] * len(prompts)
    calls.clear()
    monkeypatch.setattr(pipelines, "generate", lambda *a, **k: calls.append(a[1].shape) or original(*a, **k))
    gen(["ROMEO:"] * 5, max_new_tokens=2, batch_size=2)
    assert [c[0] for c in calls] == [2, 2, 1]
