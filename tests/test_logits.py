"""Tests for minitransformer.logits: each filter against Hugging Face, the chain order, invariants, errors."""

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minitransformer.errors import ShapeError
from minitransformer.logits import (
    LogitsSettings,
    apply_repetition_penalty,
    apply_temperature,
    logits_stages,
    min_p_filter,
    no_repeat_ngram_filter,
    process_logits,
    top_k_filter,
    top_p_filter,
    typical_filter,
)

FEW = settings(deadline=None)  # how many examples: the hypothesis profile decides (tests/conftest.py)
INF = float("inf")


def exactly_equal(ours, ref):
    """Same dtype, same values bit for bit (-inf in the same places)."""
    torch.testing.assert_close(ours, ref, rtol=0, atol=0, equal_nan=False)


@pytest.fixture(scope="module")
def hf():
    """The `transformers` module; the comparisons are skipped when it is not installed."""
    return pytest.importorskip("transformers")


@st.composite
def logits_cases(draw, max_vocab=40):
    """(B, V) logits: float32 or float64, often with ties, sometimes with -inf entries (never a whole row)."""
    b, v = draw(st.integers(1, 3)), draw(st.integers(2, max_vocab))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    x = torch.randn(b, v, generator=gen, dtype=torch.float64) * draw(st.sampled_from([0.5, 2.0, 30.0]))
    ties = draw(st.sampled_from(["none", "1 decimal", "integers", "spikes"]))
    if ties == "1 decimal":
        x = (x * 10).round() / 10
    elif ties == "integers":
        x = x.round()
    elif ties == "spikes":  # a few likely tokens over a flat floor of equal ones
        x = torch.zeros_like(x).masked_fill(torch.rand(b, v, generator=gen) < 0.15, 4.0)
    if draw(st.booleans()):  # some tokens were already removed by an earlier stage
        removed = torch.rand(b, v, generator=gen) < 0.3
        removed[torch.arange(b), torch.randint(v, (b,), generator=gen)] = False
        x = x.masked_fill(removed, -INF)
    return x.to(draw(st.sampled_from([torch.float32, torch.float64])))


@st.composite
def ids_for(draw, logits, max_len=15):
    """(B, T) token ids from a small alphabet, so that tokens and n-grams repeat."""
    b, v = logits.shape
    alphabet = draw(st.integers(1, min(v, 5)))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    return torch.randint(alphabet, (b, draw(st.integers(0, max_len))), generator=gen)


mtk = st.integers(1, 4)  # min_tokens_to_keep


# ----------------------------------------------------------------------------- each function vs Hugging Face


@FEW
@given(x=logits_cases(), t=st.floats(0.05, 5.0))
def test_temperature_matches_hf(hf, x, t):
    exactly_equal(apply_temperature(x, t), hf.TemperatureLogitsWarper(t)(None, x))


@FEW
@given(x=logits_cases(), k=st.integers(1, 45), keep=mtk)
def test_top_k_matches_hf(hf, x, k, keep):
    ref = hf.TopKLogitsWarper(top_k=k, min_tokens_to_keep=keep)(None, x)
    exactly_equal(top_k_filter(x, k, min_tokens_to_keep=keep), ref)


@FEW
@given(x=logits_cases(), p=st.floats(0.01, 0.99), keep=mtk)
def test_top_p_matches_hf(hf, x, p, keep):
    ref = hf.TopPLogitsWarper(top_p=p, min_tokens_to_keep=keep)(None, x)
    exactly_equal(top_p_filter(x, p, min_tokens_to_keep=keep), ref)


@FEW
@given(x=logits_cases(), p=st.one_of(st.floats(0.001, 1.0), st.just(1.0)), keep=mtk)
def test_min_p_matches_hf(hf, x, p, keep):
    ref = hf.MinPLogitsWarper(min_p=p, min_tokens_to_keep=keep)(None, x)
    exactly_equal(min_p_filter(x, p, min_tokens_to_keep=keep), ref)


@FEW
@given(x=logits_cases(), mass=st.floats(0.01, 0.99), keep=mtk)
def test_typical_matches_hf(hf, x, mass, keep):
    ref = hf.TypicalLogitsWarper(mass=mass, min_tokens_to_keep=keep)(None, x)
    exactly_equal(typical_filter(x, mass, min_tokens_to_keep=keep), ref)


@FEW
@given(data=st.data(), penalty=st.floats(0.2, 5.0))
def test_repetition_penalty_matches_hf(hf, data, penalty):
    x = data.draw(logits_cases())
    ids = data.draw(ids_for(x))
    ref = hf.RepetitionPenaltyLogitsProcessor(penalty)(ids, x.clone())
    exactly_equal(apply_repetition_penalty(x, ids, penalty), ref)


@FEW
@given(data=st.data(), n=st.integers(1, 4))
def test_no_repeat_ngram_matches_hf(hf, data, n):
    x = data.draw(logits_cases())
    ids = data.draw(ids_for(x))
    exactly_equal(no_repeat_ngram_filter(x, ids, n), hf.NoRepeatNGramLogitsProcessor(n)(ids, x))


def test_min_p_keeps_hf_choice_when_probabilities_underflow(hf):
    # exp(-200) is 0 in float32, so the tokens min_tokens_to_keep rescues are chosen among equal
    # zero probabilities, not by logit: HF does not keep -200 here, and neither do we.
    x = torch.tensor([[0.0, -200.0, -300.0, -INF, -250.0, -400.0], [-INF, -200.0, 0.0, -300.0, -INF, -INF]])
    ref = hf.MinPLogitsWarper(min_p=0.5, min_tokens_to_keep=3)(None, x)
    exactly_equal(min_p_filter(x, 0.5, min_tokens_to_keep=3), ref)


# ----------------------------------------------------------------------------- the chain vs Hugging Face's generate


def hf_processors(hf, ours: LogitsSettings, do_sample: bool, context_len: int):
    """The LogitsProcessorList that `generate` builds for the same settings, via its own builder."""
    fields = dataclasses.asdict(ours)
    fields["top_k"] = fields["top_k"] or 0  # HF reads top_k=None as "unset", then fills in its default 50
    config = hf.GenerationConfig(do_sample=do_sample, **fields)
    config.update(**hf.GenerationConfig._get_default_generation_params(), defaults_only=True)
    model = SimpleNamespace(  # the two things _get_logits_processor reads from the model
        config=SimpleNamespace(is_encoder_decoder=False), _merge_criteria_processor_list=lambda d, _: d
    )
    # (a context length of 0 would only add a warning about prompts given as embeddings)
    return hf.GenerationMixin._get_logits_processor(model, config, input_ids_seq_length=max(context_len, 1))


COMBOS = {
    "defaults": LogitsSettings(),
    "everything off": LogitsSettings(top_k=None),
    "temperature only": LogitsSettings(temperature=0.7, top_k=0),
    "top-p after temperature": LogitsSettings(temperature=1.8, top_k=None, top_p=0.8),
    "all warpers": LogitsSettings(temperature=0.6, top_k=8, top_p=0.9, min_p=0.05, typical_p=0.7),
    "penalties": LogitsSettings(repetition_penalty=1.4, no_repeat_ngram_size=2),
    "everything": LogitsSettings(1.3, 20, 0.95, 0.02, 0.9, 1.2, 3),
    "rewarding repeats": LogitsSettings(temperature=0.9, repetition_penalty=0.7, no_repeat_ngram_size=1),
}


@pytest.mark.parametrize("do_sample", [True, False])
@pytest.mark.parametrize("name", list(COMBOS))
def test_process_logits_matches_hf_generate(hf, name, do_sample):
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(3, 30, generator=gen) * 3).round()  # integer logits: plenty of ties
    x[1, :5] = -INF
    ids = torch.randint(6, (3, 12), generator=gen)
    ref = hf_processors(hf, COMBOS[name], do_sample, ids.shape[1])(ids, x.clone())
    exactly_equal(process_logits(x, ids, COMBOS[name], do_sample), ref)


@FEW
@given(
    data=st.data(),
    s=st.builds(
        LogitsSettings,
        temperature=st.sampled_from([1.0, 0.5, 1.7]),
        top_k=st.sampled_from([None, 0, 1, 5, 50]),
        top_p=st.sampled_from([1.0, 0.9, 0.4]),
        min_p=st.sampled_from([None, 0.05, 0.5]),
        typical_p=st.sampled_from([1.0, 0.8, 0.3]),
        repetition_penalty=st.sampled_from([1.0, 1.3, 0.8]),
        no_repeat_ngram_size=st.integers(0, 3),
    ),
    do_sample=st.booleans(),
)
def test_process_logits_matches_hf_generate_any_settings(hf, data, s, do_sample):
    x = data.draw(logits_cases())
    ids = data.draw(ids_for(x))
    ref = hf_processors(hf, s, do_sample, ids.shape[1])(ids, x.clone())
    exactly_equal(process_logits(x, ids, s, do_sample), ref)


# ----------------------------------------------------------------------------- stages and order


def test_stage_names_follow_hf_order():
    s = LogitsSettings(0.8, 10, 0.9, 0.1, 0.8, 1.2, 2)
    x, ids = torch.randn(2, 20), torch.randint(20, (2, 6))
    names = [name for name, _ in logits_stages(x, ids, s)]
    assert names == [
        "raw", "repetition penalty", "no-repeat n-gram", "temperature", "top-k", "top-p", "min-p", "typical"
    ]  # fmt: skip
    assert [n for n, _ in logits_stages(x, ids, s, do_sample=False)] == names[:3]


@FEW
@given(data=st.data(), s=st.sampled_from(list(COMBOS.values())), do_sample=st.booleans())
def test_last_stage_is_process_logits(data, s, do_sample):
    x = data.draw(logits_cases())
    ids = data.draw(ids_for(x))
    stages = logits_stages(x, ids, s, do_sample)
    exactly_equal(stages[0][1], x)
    exactly_equal(stages[-1][1], process_logits(x, ids, s, do_sample))


def test_greedy_skips_the_warpers():
    x, ids = torch.randn(2, 10), torch.randint(10, (2, 4))
    s = LogitsSettings(temperature=0.3, top_k=2, top_p=0.5, repetition_penalty=1.5)
    exactly_equal(process_logits(x, ids, s, do_sample=False), apply_repetition_penalty(x, ids, 1.5))
    assert not torch.isinf(process_logits(x, ids, s, do_sample=False)).any()


def test_temperature_changes_what_top_p_keeps():
    x = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    sharp = process_logits(x, None, LogitsSettings(temperature=0.2, top_k=None, top_p=0.9), do_sample=True)
    flat = process_logits(x, None, LogitsSettings(temperature=5.0, top_k=None, top_p=0.9), do_sample=True)
    assert torch.isfinite(sharp).sum() == 1 and torch.isfinite(flat).sum() == 4


# ----------------------------------------------------------------------------- known answers


def test_top_k_keeps_every_tie_at_the_kth_value():
    x = torch.tensor([[1.0, 2.0, 2.0, 0.0]])
    exactly_equal(top_k_filter(x, 1), torch.tensor([[-INF, 2.0, 2.0, -INF]]))
    exactly_equal(top_k_filter(x, 1, min_tokens_to_keep=3), torch.tensor([[1.0, 2.0, 2.0, -INF]]))


def test_top_p_keeps_the_smallest_set_reaching_p():
    x = torch.tensor([[0.5, 0.3, 0.2]]).log()
    assert torch.isfinite(top_p_filter(x, 0.45)).tolist() == [[True, False, False]]
    assert torch.isfinite(top_p_filter(x, 0.6)).tolist() == [[True, True, False]]


def test_min_p_scales_with_the_top_probability():
    x = torch.tensor([[0.5, 0.2, 0.05, 0.25]]).log()
    assert torch.isfinite(min_p_filter(x, 0.3)).tolist() == [[True, True, False, True]]


def test_typical_can_remove_the_most_likely_token():
    # H = 1.33 nats; -log 0.4 = 0.92 is further from H than -log 0.2 = 1.61, so 0.4 is "atypical"
    x = torch.tensor([[0.4, 0.2, 0.2, 0.2]]).log()
    assert torch.isfinite(typical_filter(x, 0.5)).tolist() == [[False, True, True, True]]


def test_repetition_penalty_divides_positive_and_multiplies_negative():
    x = torch.tensor([[2.0, -2.0, 1.0, 0.0], [2.0, -2.0, 1.0, 0.0]])
    ids = torch.tensor([[0, 1, 0], [3, 3, 3]])  # repeats are penalised once
    exactly_equal(
        apply_repetition_penalty(x, ids, 2.0), torch.tensor([[1.0, -4.0, 1.0, 0.0], [2, -2, 1, 0.0]])
    )


@pytest.mark.parametrize(
    "ids, n, banned",
    [
        ([1, 2, 3, 1, 2], 3, [3]),  # "1 2" was followed by 3
        ([1, 2, 3, 1, 2], 2, [3]),  # "2" was followed by 3
        ([1, 2, 1, 4, 1], 2, [2, 4]),  # "1" was followed by 2 and by 4
        ([1, 2, 3], 1, [1, 2, 3]),  # n = 1: every token seen so far
        ([1, 2, 3], 4, []),  # no complete 4-gram yet
        ([1, 2, 3], 0, []),  # 0 disables
    ],
)
def test_no_repeat_ngram_known_answers(ids, n, banned):
    out = no_repeat_ngram_filter(torch.zeros(1, 6), torch.tensor([ids]), n)
    assert torch.isinf(out[0]).nonzero().flatten().tolist() == banned


# ----------------------------------------------------------------------------- invariants

FILTERS = {
    "top-k": lambda x, keep: top_k_filter(x, 1, keep),
    "top-p": lambda x, keep: top_p_filter(x, 0.3, keep),
    "min-p": lambda x, keep: min_p_filter(x, 0.9, keep),
    "typical": lambda x, keep: typical_filter(x, 0.2, keep),
}


@FEW
@given(x=logits_cases(), keep=mtk, name=st.sampled_from(list(FILTERS)))
def test_filters_only_remove_and_keep_enough(x, keep, name):
    out = FILTERS[name](x, keep)
    kept = torch.isfinite(out)
    assert torch.equal(out[kept], x[kept])  # survivors keep their exact logit
    assert torch.isneginf(out[~kept]).all()
    # min-p counts its min_tokens_to_keep in probability space, where an underflowed token (p = 0)
    # ties with a removed one; the other filters rank by logit, where every finite token beats -inf
    rescuable = x.softmax(-1) > 0 if name == "min-p" else torch.isfinite(x)
    assert (kept.sum(-1) >= rescuable.sum(-1).clamp(max=keep)).all()
    if name != "typical":  # typical sampling may drop the most likely token on purpose
        assert torch.equal(out.amax(-1), x.amax(-1))  # (with ties, top-p may keep only one of them)


@FEW
@given(x=logits_cases(), extra=st.integers(0, 5), keep=mtk)
def test_identity_settings_leave_logits_unchanged(x, extra, keep):
    v = x.shape[-1]
    for out in (
        top_k_filter(x, v + extra, keep),
        top_k_filter(x, 0, keep),
        top_p_filter(x, 1.0, keep),
        typical_filter(x, 1.0, keep),
        apply_temperature(x, 1.0),
        apply_repetition_penalty(x, torch.randint(v, (x.shape[0], 5)), 1.0),
        no_repeat_ngram_filter(x, torch.zeros(x.shape[0], 5, dtype=torch.long), 0),
        process_logits(x, None, LogitsSettings(top_k=None), do_sample=True),
    ):
        exactly_equal(out, x)
        assert out.data_ptr() != x.data_ptr()  # new logits, even when nothing changed


ALL_CALLS = {
    "temperature": lambda x, ids: apply_temperature(x, 0.5),
    "top-k": lambda x, ids: top_k_filter(x, 2),
    "top-p": lambda x, ids: top_p_filter(x, 0.5),
    "min-p": lambda x, ids: min_p_filter(x, 0.5),
    "typical": lambda x, ids: typical_filter(x, 0.5),
    "repetition": lambda x, ids: apply_repetition_penalty(x, ids, 1.5),
    "n-gram": lambda x, ids: no_repeat_ngram_filter(x, ids, 2),
    "process": lambda x, ids: process_logits(x, ids, COMBOS["everything"], True),
    "stages": lambda x, ids: logits_stages(x, ids, COMBOS["everything"]),
}


@pytest.mark.parametrize("name", list(ALL_CALLS))
def test_inputs_are_never_modified(name):
    x, ids = torch.randn(2, 12), torch.tensor([[1, 2, 1, 2, 1], [3, 3, 3, 3, 3]])
    x_before, ids_before = x.clone(), ids.clone()
    ALL_CALLS[name](x, ids)
    exactly_equal(x, x_before)
    assert torch.equal(ids, ids_before)


# ----------------------------------------------------------------------------- errors

X = torch.zeros(2, 5)
IDS = torch.zeros(2, 3, dtype=torch.long)
BAD_ARGUMENTS = [
    *[
        ("temperature", lambda v: apply_temperature(X, v), v)
        for v in (0.0, -1.0, math.nan, math.inf, True, "1")
    ],
    *[("k", lambda v: top_k_filter(X, v), v) for v in (-1, 2.5, True, None)],
    *[("p", lambda v: top_p_filter(X, v), v) for v in (0.0, -0.1, 1.5, math.nan)],
    *[("p", lambda v: min_p_filter(X, v), v) for v in (0.0, 1.01)],
    *[("mass", lambda v: typical_filter(X, v), v) for v in (0.0, 2.0)],
    *[("penalty", lambda v: apply_repetition_penalty(X, IDS, v), v) for v in (0.0, -1.2, math.inf)],
    *[("n", lambda v: no_repeat_ngram_filter(X, IDS, v), v) for v in (-1, 1.5)],
    *[("min_tokens_to_keep", lambda v: top_k_filter(X, 2, v), v) for v in (0, -3, 1.0)],
    *[("min_tokens_to_keep", lambda v: top_p_filter(X, 0.5, v), v) for v in (0,)],
    *[("min_tokens_to_keep", lambda v: min_p_filter(X, 0.5, v), v) for v in (0,)],
    *[("min_tokens_to_keep", lambda v: typical_filter(X, 0.5, v), v) for v in (0,)],
    *[
        (
            "min_tokens_to_keep",
            lambda v: process_logits(X, IDS, LogitsSettings(), True, min_tokens_to_keep=v),
            v,
        )
        for v in (0,)
    ],  # fmt: skip
]
BAD_SETTINGS = {
    "temperature": [0, -0.5, math.nan],
    "top_k": [-1, 3.0],
    "top_p": [0, 1.1, -0.2],
    "min_p": [0, 1.5],
    "typical_p": [0.0, 1.2],
    "repetition_penalty": [0, -1.0],
    "no_repeat_ngram_size": [-1, 2.0],
}


@pytest.mark.parametrize("name, call, value", BAD_ARGUMENTS)
def test_invalid_arguments_name_the_argument(name, call, value):
    with pytest.raises(ValueError, match=rf"^{name} must") as info:
        call(value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize("name, value", [(k, v) for k, vs in BAD_SETTINGS.items() for v in vs])
def test_invalid_settings_name_the_field(name, value):
    with pytest.raises(ValueError, match=rf"^{name} must") as info:
        LogitsSettings(**{name: value})
    assert repr(value) in str(info.value)


def test_settings_are_frozen_and_variants_are_checked():
    s = LogitsSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.top_p = 1.5
    with pytest.raises(ValueError, match="^top_p must"):
        dataclasses.replace(s, top_p=1.5)


@pytest.mark.parametrize("name", list(ALL_CALLS))
def test_nan_logits_are_rejected(name):
    x = torch.zeros(2, 12)
    x[1, 3] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        ALL_CALLS[name](x, torch.zeros(2, 3, dtype=torch.long))


@pytest.mark.parametrize(
    "error, argument, call",
    [
        (ShapeError, "logits", lambda: top_k_filter(torch.zeros(5), 2)),
        (ShapeError, "logits", lambda: process_logits(torch.zeros(1, 3, 5), None, LogitsSettings(), True)),
        (TypeError, "logits", lambda: top_p_filter(torch.zeros(2, 5, dtype=torch.long), 0.5)),
        (TypeError, "logits", lambda: apply_temperature([[0.0, 1.0]], 0.5)),
        (TypeError, "input_ids", lambda: apply_repetition_penalty(X, IDS.float(), 1.2)),
        (TypeError, "input_ids", lambda: no_repeat_ngram_filter(X, IDS.bool(), 2)),
        (ShapeError, "input_ids", lambda: apply_repetition_penalty(X, IDS[0], 1.2)),
        (ShapeError, "input_ids", lambda: no_repeat_ngram_filter(X, IDS[:1], 2)),
        (ValueError, "input_ids", lambda: apply_repetition_penalty(X, IDS + 5, 1.2)),
        (ValueError, "input_ids", lambda: no_repeat_ngram_filter(X, IDS - 1, 2)),
        (
            ValueError,
            "input_ids",
            lambda: process_logits(X, None, LogitsSettings(repetition_penalty=1.2), False),
        ),
        (TypeError, "settings", lambda: process_logits(X, IDS, {"top_k": 5}, True)),
    ],
)
def test_bad_tensors_name_the_argument(error, argument, call):
    with pytest.raises(error, match=rf"^{argument} "):
        call()


def test_infinite_logits_are_allowed():
    x = torch.tensor([[-INF, 1.0, 2.0, -INF]])
    out = process_logits(x, torch.tensor([[1, 2]]), COMBOS["everything"], do_sample=True)
    assert torch.isneginf(out[0, [0, 3]]).all() and torch.isfinite(out).any()
