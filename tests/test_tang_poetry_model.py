"""The bundled tang-poetry-char model: its recorded validation loss, the bigram baseline it must beat, and poems
of every form and acrostic (藏头诗) under sampling, measured with fixed seeds (MODEL_CARDS.md records the numbers).
"""

from __future__ import annotations

import math

import pytest
import torch

import minitransformer as mt
from minitransformer.generation.poetry import PoemGrammar
from minitransformer.ngram import NGramLM
from minitransformer.poems import FORMS, POEM_END, has_form, poem_lines, poem_splits, poem_tokenizer
from minitransformer.tools.evaluation import poem_sequences, poem_validation_loss

RECORDED_LOSS = 5.168  # nats per character on every validation poem (MODEL_CARDS.md); the test allows +0.02


@pytest.fixture(scope="module")
def bundled():
    return mt.load_pretrained("tang-poetry-char")


@pytest.fixture(scope="module")
def splits():
    return poem_splits()


@pytest.mark.slow
def test_validation_loss_on_every_held_out_poem_beats_the_bigram_baseline(bundled, splits):
    model, tokenizer = bundled
    train, val = splits
    assert len(val) == 1853  # the last 5% in file order, every poem scored
    loss = poem_validation_loss(model, tokenizer, val)
    bigram = NGramLM(2, tokenizer.vocab_size, smoothing="interpolated").fit(poem_sequences(tokenizer, train))
    baseline = bigram.nll(poem_sequences(tokenizer, val))
    assert loss <= RECORDED_LOSS + 0.02, f"validation loss {loss:.3f} nats/char, recorded {RECORDED_LOSS}"
    assert loss < baseline - 0.5, f"the model ({loss:.3f}) must beat the character bigram ({baseline:.3f})"
    assert baseline < math.log(tokenizer.vocab_size)


def sample_poems(model, tokenizer, grammar: PoemGrammar, n: int, seed: int) -> list[str]:
    """n poems sampled at once (temperature 0.8, top-p 0.9) under the form's constraint."""
    newline = tokenizer.encode(POEM_END)[0]
    torch.manual_seed(seed)
    out = mt.generate(model, torch.full((n, 1), newline), do_sample=True, temperature=0.8, top_p=0.9,
                      max_new_tokens=grammar.length + 1, eos_token_id=newline, pad_token_id=newline,
                      prefix_allowed_tokens_fn=grammar)
    return [tokenizer.decode(row[1:].tolist()).split(POEM_END)[0] for row in out]


@pytest.mark.slow
@pytest.mark.parametrize("form", list(FORMS))
def test_sampled_poems_have_the_form(bundled, form):
    model, tokenizer = bundled
    poems = sample_poems(model, tokenizer, PoemGrammar(tokenizer, form), n=100, seed=0)
    rate = sum(has_form(p, form) for p in poems) / len(poems)
    assert rate >= 0.95, f"{form}: {rate:.0%} of 100 sampled poems have the form; e.g. {poems[:2]}"
    assert len(set(poems)) > 90, "sampling at temperature 0.8 should give distinct poems"


@pytest.mark.slow
@pytest.mark.parametrize("form, acrostic", [("五言绝句", "春夏秋冬"), ("七言绝句", "明月清风"),
                                            ("五言律诗", "一二三四五六七八"), ("七言律诗", "天地山水日月星辰")])
def test_acrostic_poems_open_their_lines_with_the_requested_characters(bundled, form, acrostic):
    model, tokenizer = bundled
    poems = sample_poems(model, tokenizer, PoemGrammar(tokenizer, form, acrostic), n=25, seed=1)
    for poem in poems:
        assert has_form(poem, form), poem
        assert "".join(line[0] for line in poem_lines(poem)) == acrostic, poem


def test_generate_poem_and_the_pipeline_on_the_bundled_model(bundled):
    model, tokenizer = bundled
    torch.manual_seed(0)
    poem = mt.generate_poem(model, tokenizer, form="五言绝句", prompt="床前明月光", do_sample=True, top_p=0.9)
    assert poem.startswith("床前明月光") and has_form(poem, "五言绝句")
    generated = mt.pipeline("text-generation", model="tang-poetry-char")("床前明月光", max_new_tokens=10)
    assert generated[0]["generated_text"].startswith("床前明月光")
    assert len(generated[0]["generated_text"]) == 15


def test_poem_validation_loss_equals_scoring_each_poem_alone(splits):
    train, val = splits
    tokenizer = mt.CharTokenizer.from_text("".join(p["text"] for p in val[:30]) + POEM_END)
    torch.manual_seed(0)
    model = mt.GPT(mt.TransformerConfig(vocab_size=tokenizer.vocab_size, d_model=16, n_heads=2, n_layers=1,
                                        max_len=80)).eval()
    total, count = 0.0, 0
    for poem in val[:30]:
        ids = torch.tensor([tokenizer.encode(POEM_END + poem["text"] + POEM_END)])  # (1, T)
        logits = model(ids[:, :-1])[0]  # (T-1, V)
        total += torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
        count += ids.shape[1] - 1
    assert poem_validation_loss(model, tokenizer, val[:30], batch_size=7) == pytest.approx(total / count, rel=1e-5)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_poem_tokenizer_refuses_a_bad_min_count(bad):
    with pytest.raises(ValueError, match="min_count must be a positive integer"):
        poem_tokenizer([], min_count=bad)
