"""Explorers under their worst settings and bad arguments (issue 17, items 10 and 11).

Every slider at its maximum must still give an update that finishes: the limits were chosen by
measurement (about a second at most on 2 cores with the bundled models; benchmarks/widgets.py
measures the speed), and the time bound here is only a guard against a cliff such as the 110 s
that beam search at the old slider maxima took. Invalid constructor arguments are errors that
name the argument, raised before any widget exists.
"""

import time

import ipywidgets.widgets.widget as widget_module
import pytest
import torch

import minitransformer as mt
from minitransformer.errors import ConfigError
from minitransformer.widgets import AttentionExplorer, BeamSearchExplorer, FillMaskExplorer, SamplingExplorer
from minitransformer.widgets.sampling import NEW_TOKEN_LIMITS

GUARD_S = 5.0  # far above the measured worst case; the benchmark suite measures speed
TOK = mt.CharTokenizer.from_text("ROMEO: abcdefghij klmnop\n", special_tokens=("[PAD]", "[MASK]"))


def tiny(cls, tokenizer=TOK):
    torch.manual_seed(0)
    cfg = mt.TransformerConfig(vocab_size=tokenizer.vocab_size, d_model=16, n_heads=2, n_layers=2, max_len=48)
    return cls(cfg).eval()


@pytest.fixture(scope="module")
def char():
    return mt.load_pretrained("shakespeare-char")


def set_quietly(explorer, values):
    """Set several controls without an update each (the last change below triggers the one timed)."""
    with explorer._quietly():
        for name, value in values.items():
            getattr(explorer, name).value = value


def timed_change(explorer, name, value):
    start = time.perf_counter()
    getattr(explorer, name).value = value
    elapsed = time.perf_counter() - start
    assert "color:#b00020" not in explorer.error.value, explorer.error.value  # no error, a note is fine
    return elapsed


def maxima(explorer, names):
    return {name: getattr(explorer, name).max for name in names}


@pytest.mark.parametrize("strategy", ["beam", "sampling"])
def test_sampling_explorer_at_every_slider_maximum(char, strategy):
    ex = SamplingExplorer(*char, strategy=strategy, max_new_tokens=5)
    sliders = ["temperature", "top_k", "top_p", "min_p", "repetition_penalty", "num_beams"]
    set_quietly(ex, maxima(ex, sliders))
    assert timed_change(ex, "max_new_tokens", ex.max_new_tokens.max) < GUARD_S
    assert len(ex.sequence) - ex.prompt_length <= NEW_TOKEN_LIMITS[strategy]
    assert timed_change(ex, "step", ex.step.max) < GUARD_S


def test_beam_search_explorer_at_every_slider_maximum(char):
    ex = BeamSearchExplorer(*char, num_beams=2, max_new_tokens=1)
    for early_stopping in (True, "never"):
        set_quietly(ex, {**maxima(ex, ["num_beams", "length_penalty"]), "early_stopping": early_stopping})
        set_quietly(ex, {"max_new_tokens": ex.max_new_tokens.max - 1})
        assert timed_change(ex, "max_new_tokens", ex.max_new_tokens.max) < GUARD_S


@pytest.mark.parametrize("name", ["shakespeare-char", "shakespeare-mlm"])
def test_attention_explorer_at_its_longest_text(name):
    model, tok = mt.load_pretrained(name)
    ex = AttentionExplorer(model, tok)
    text = ("ROMEO: But soft, what light [MASK]" * 20)[: model.config.max_len]
    assert timed_change(ex, "text", text) < GUARD_S
    assert timed_change(ex, "layer", ex.layer.max) < GUARD_S
    tokens = len(ex.query.options) - 1  # ("all", then one entry per token)
    assert timed_change(ex, "query", tokens - 1) < GUARD_S
    labelled = [t for t in ex._figure.axes[0].get_xticklabels() if t.get_text()]
    assert len(labelled) <= 48 < tokens  # every n-th token labelled: drawing labels is what costs


def test_seq2seq_attention_and_fill_mask_at_their_limits():
    model, tok = mt.load_pretrained("dates-seq2seq")
    ex = AttentionExplorer(model, tok, source="March 5, 2021")
    assert timed_change(ex, "source", ("March 5, 2021 " * 9)[: model.config.max_len]) < GUARD_S
    assert timed_change(ex, "layer", ex.layer.max) < GUARD_S
    model, tok = mt.load_pretrained("shakespeare-mlm")
    fill = FillMaskExplorer(model, tok)
    text = "ROMEO:"
    while len(tok.encode(text + " [MASK]ut")) <= model.config.max_len:  # as many tokens as the model reads
        text += " [MASK]ut"
    assert timed_change(fill, "text", text) < GUARD_S
    assert timed_change(fill, "top", fill.top.max) < GUARD_S
    assert fill.text_output.value.count("<table>") == text.count("[MASK]")


def test_beam_search_gets_a_lower_new_token_limit_and_gives_it_back():
    ex = SamplingExplorer(tiny(mt.GPT), TOK, max_new_tokens=NEW_TOKEN_LIMITS["sampling"] // 4)
    assert ex.max_new_tokens.max == NEW_TOKEN_LIMITS["sampling"]
    ex.max_new_tokens.value = NEW_TOKEN_LIMITS["sampling"]
    ex.strategy.value = "beam"
    assert ex.max_new_tokens.max == ex.max_new_tokens.value == NEW_TOKEN_LIMITS["beam"]
    assert len(ex.sequence) - ex.prompt_length == NEW_TOKEN_LIMITS["beam"]  # the clamped value was used
    ex.strategy.value = "greedy"
    assert ex.max_new_tokens.max == NEW_TOKEN_LIMITS["greedy"]


def error_lines(explorer):
    """Every value the error line takes from now on."""
    seen = []
    explorer.error.observe(lambda change: seen.append(change["new"]), names="value")
    return seen


@pytest.mark.parametrize("cls", [SamplingExplorer, BeamSearchExplorer])
def test_a_generation_past_the_context_says_computing_first(cls):
    ex = cls(tiny(mt.GPT), TOK, prompt="ROMEO:", max_new_tokens=10)  # 6 + 10 tokens: within max_len=48
    seen = error_lines(ex)
    ex.prompt.value = "ROMEO: " * 6  # 42 + 10 tokens: past it, the slow sliding window
    assert "computing" in seen[0] and "max_len=48" in seen[0]
    assert "computing" not in ex.error.value  # the result replaced it
    seen.clear()
    ex.prompt.value = "ROMEO: ab"
    assert not any("computing" in line for line in seen)  # a fast update shows no busy line


def widgets_alive():
    return len(widget_module._instances)


GPT, MLM = tiny(mt.GPT), tiny(mt.MaskedLM)
S, B, F, A = SamplingExplorer, BeamSearchExplorer, FillMaskExplorer, AttentionExplorer
V = TOK.vocab_size
BAD_ARGUMENTS = [  # explorer, keyword arguments, exception, message
    (S, dict(max_new_tokens=-1), ConfigError, r"max_new_tokens must be an integer in \[1, 200\], got -1"),
    (S, dict(max_new_tokens=10**9), ConfigError, r"\[1, 200\], got 1000000000 \(the limit keeps"),
    (S, dict(strategy="beam", max_new_tokens=150), ConfigError, r"\[1, 100\], got 150"),
    (S, dict(num_beams=0), ConfigError, r"num_beams must be an integer in \[2, 8\], got 0"),
    (S, dict(prompt=5), TypeError, "prompt must be a string, got 5"),
    (S, dict(strategy="top-k"), ConfigError, r"strategy must be one of \('greedy', 'sampling', 'beam'\)"),
    (S, dict(temperature=0), ConfigError, r"temperature must be a number in \[0.05, 3.0\], got 0"),
    (S, dict(temperature=float("nan")), ConfigError, "temperature must be a number .*got nan"),
    (S, dict(top_k=V + 1), ConfigError, rf"top_k must be an integer in \[0, {V}\], got {V + 1}"),
    (S, dict(top_p=1.5), ConfigError, r"top_p must be a number in \[0.0, 1.0\], got 1.5"),
    (S, dict(top_p="0.9"), TypeError, "top_p must be a number"),
    (S, dict(seed=-1), ConfigError, "seed must be an integer in"),
    (S, dict(max_new_tokens=10, step=11), ConfigError, r"step must be an integer in \[1, 10\], got 11"),
    (S, dict(top=0), ConfigError, r"top must be an integer in \[1, 100\], got 0"),
    (S, dict(tokenizer=None), TypeError, "tokenizer must be a minitransformer tokenizer"),
    (B, dict(num_beams=1), ConfigError, r"num_beams must be an integer in \[2, 6\], got 1"),
    (B, dict(max_new_tokens=100), ConfigError, r"max_new_tokens must be an integer in \[1, 12\]"),
    (B, dict(prompt=None), TypeError, "prompt must be a string, got None"),
    (F, dict(top=0), ConfigError, r"top must be an integer in \[1, 20\], got 0"),
    (F, dict(text=["a[MASK]"]), TypeError, "text must be a string"),
    (A, dict(text=3), TypeError, "text must be a string, got 3"),
    (A, dict(source="abc"), TypeError, "source= and target= are a Seq2SeqTransformer's inputs"),
    (A, dict(tokenizer=mt.data.ascii_tokenizer()), ValueError, f"has 96 tokens, more than the model's vocab_size={V}"),
]


@pytest.mark.parametrize("cls, kwargs, error, match", BAD_ARGUMENTS)
def test_invalid_explorer_arguments_are_named_before_any_widget_exists(cls, kwargs, error, match):
    kwargs = {"model": MLM if cls is F else GPT, "tokenizer": TOK, **kwargs}
    before = widgets_alive()
    with pytest.raises(error, match=match):
        cls(**kwargs)
    assert widgets_alive() == before
