"""prefix_allowed_tokens_fn: Hugging Face's PrefixConstrainedLogitsProcessor on random scores, and
generate with a constraint token for token against Hugging Face's generate (greedy, sampling, beams)."""

import math

import pytest
import torch
from test_generation import PAD, V, hf_and_ours

from minitransformer.generation import generate, stream
from minitransformer.generation.constraints import constrain

transformers = pytest.importorskip("transformers")
from transformers.generation.logits_process import PrefixConstrainedLogitsProcessor  # noqa: E402


def modular(batch_id, ids):
    """Allowed next: the tokens t with (t + last token + batch_id) % 3 == 0, about a third of V."""
    return [t for t in range(V) if (t + int(ids[-1]) + batch_id) % 3 == 0]


def narrow(batch_id, ids):
    """One or two allowed tokens, depending on the length so far: a tight grammar."""
    return [(5 * len(ids) + batch_id) % V] if len(ids) % 2 else [3 + batch_id, 40]


@pytest.fixture(scope="module")
def pair():
    return hf_and_ours()


@pytest.fixture(scope="module")
def prompts():
    """Three left-padded prompts and their attention mask."""
    ids = torch.randint(2, V, (3, 6), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(3, 6, dtype=torch.long)
    mask[1, :2] = mask[2, :4] = 0
    return ids.masked_fill(mask == 0, PAD), mask


# ----------------------------------------------------------------------------- the processor alone


@pytest.mark.parametrize("rows_per_prompt", [1, 2, 3])
@pytest.mark.parametrize("fn", [modular, narrow])
def test_constrain_equals_hugging_face_on_random_scores(fn, rows_per_prompt):
    g = torch.Generator().manual_seed(rows_per_prompt)
    N = 4 * rows_per_prompt
    scores = torch.randn(N, V, generator=g) * 3
    scores[torch.rand(N, V, generator=g) < 0.3] = -math.inf  # tokens an earlier processor removed
    ids = torch.randint(0, V, (N, 7), generator=g)
    expected = PrefixConstrainedLogitsProcessor(fn, rows_per_prompt)(ids, scores.clone())
    got = constrain(scores, ids, fn, rows_per_prompt)
    assert torch.equal(got, expected)
    allowed_somewhere = torch.isfinite(got)
    for r in range(N):  # and what it means: exactly the allowed tokens keep a score
        assert set(allowed_somewhere[r].nonzero().flatten().tolist()) <= set(fn(r // rows_per_prompt, ids[r]))


def test_a_prompt_whose_allowed_tokens_are_all_removed_gets_them_back_with_score_0():
    scores = torch.randn(4, V)
    scores[0:2, 3] = scores[2, 3] = -math.inf  # prompt 0 lost token 3 in both rows, prompt 1 in one
    only_3, ids = lambda batch_id, ids: [3], torch.zeros(4, 2, dtype=torch.long)
    expected = PrefixConstrainedLogitsProcessor(only_3, 2)(ids, scores.clone())
    got = constrain(scores, ids, only_3, 2)
    assert torch.equal(got, expected)
    assert got[0:2, 3].tolist() == [0.0, 0.0] and got[2, 3] == -math.inf and got[3, 3] == scores[3, 3]
    assert torch.isinf(got[:, :3]).all() and torch.isinf(got[:, 4:]).all()


# ----------------------------------------------------------------------------- generate against Hugging Face


def both(pair, prompts, fn, seed=None, **kw):
    hf, ours = pair
    ids, mask = prompts
    args = dict(attention_mask=mask, max_new_tokens=8, pad_token_id=PAD, prefix_allowed_tokens_fn=fn, **kw)
    if seed is not None:
        torch.manual_seed(seed)
    expected = hf.generate(ids, **args)
    if seed is not None:
        torch.manual_seed(seed)  # generator=None draws from torch's global generator, as Hugging Face does
    return expected, generate(ours, ids, **args)


CASES = {
    "greedy": dict(),
    "greedy, no_repeat_ngram_size": dict(no_repeat_ngram_size=1),
    "greedy, eos": dict(eos_token_id=9),
    "sampling": dict(do_sample=True, top_k=10, temperature=0.8),
    "sampling, num_return_sequences": dict(do_sample=True, top_p=0.9, num_return_sequences=2),
    "beam search": dict(num_beams=3),
    "beam search, num_return_sequences, eos": dict(num_beams=3, num_return_sequences=2, eos_token_id=9),
    "beam sampling": dict(num_beams=2, do_sample=True),
}


@pytest.mark.filterwarnings("ignore:Using the model-agnostic default")  # Hugging Face's advice
@pytest.mark.parametrize("fn", [modular, narrow])
@pytest.mark.parametrize("case", CASES)
def test_generate_with_a_constraint_equals_hugging_face(pair, prompts, case, fn):
    kw = CASES[case]
    expected, got = both(pair, prompts, fn, seed=0 if kw.get("do_sample") else None, **kw)
    assert torch.equal(got, expected)
    n = kw.get("num_return_sequences", 1)  # rows per prompt in the output
    for r, row in enumerate(got):  # every new token was allowed (unless the sequence had ended)
        for t in range(6, row.shape[0]):
            ended = "eos_token_id" in kw and (row[6:t] == kw["eos_token_id"]).any()
            assert ended or int(row[t]) in fn(r // n, row[:t]), f"row {r} position {t}"


def test_the_constraint_changes_the_output(pair, prompts):
    """The cases above are not trivially equal: without the constraint the tokens differ."""
    free = generate(pair[1], prompts[0], attention_mask=prompts[1], max_new_tokens=8, pad_token_id=PAD)
    for fn in (modular, narrow):
        constrained = generate(pair[1], prompts[0], attention_mask=prompts[1], max_new_tokens=8,
                               pad_token_id=PAD, prefix_allowed_tokens_fn=fn)
        assert not torch.equal(free, constrained)


def test_stream_follows_the_constraint(pair):
    ids = torch.tensor([[4, 8, 15, 16]])
    streamed = list(stream(pair[1], ids, max_new_tokens=6, prefix_allowed_tokens_fn=narrow))
    generated = generate(pair[1], ids, max_new_tokens=6, prefix_allowed_tokens_fn=narrow)
    assert streamed == generated[0, 4:].tolist()


# ----------------------------------------------------------------------------- bad input


BAD = [
    (lambda b, ids: [], ValueError, r"prefix_allowed_tokens_fn returned for batch_id=0 .* an empty list"),
    (lambda b, ids: [3, V], ValueError, rf"batch_id=0 .* holding token id {V}, outside the vocabulary"),
    (lambda b, ids: [-1], ValueError, r"prefix_allowed_tokens_fn .* token id -1, outside the vocabulary"),
    (lambda b, ids: [1.0, 2.0], TypeError, r"prefix_allowed_tokens_fn .* \[1.0, 2.0\], which holds 1.0"),
    (lambda b, ids: ["a"], TypeError, r"prefix_allowed_tokens_fn .* which holds 'a'"),
    (lambda b, ids: [True], TypeError, r"prefix_allowed_tokens_fn .* which holds True"),
    (lambda b, ids: 3, TypeError, r"prefix_allowed_tokens_fn returned for batch_id=0 .* 3: it must return"),
    (lambda b, ids: None, TypeError, r"prefix_allowed_tokens_fn returned .* None"),
    (lambda b, ids: torch.tensor([1.0]), TypeError, r"prefix_allowed_tokens_fn .* dtype torch.float32"),
    (lambda b, ids: [] if b == 1 else [3], ValueError, r"batch_id=1 .* an empty list"),
]


@pytest.mark.parametrize("fn, error, message", BAD, ids=[b[2][:40] for b in BAD])
def test_bad_constraint_results_name_the_function_the_batch_and_the_value(pair, fn, error, message):
    with pytest.raises(error, match=message):
        generate(pair[1], torch.tensor([[1, 2], [3, 4]]), max_new_tokens=2, prefix_allowed_tokens_fn=fn)


@pytest.mark.parametrize("fn", [3, "abc", [1, 2]])
def test_a_constraint_that_is_not_a_function_is_a_type_error(pair, fn):
    with pytest.raises(TypeError, match="prefix_allowed_tokens_fn must be a function"):
        generate(pair[1], torch.tensor([[1, 2]]), max_new_tokens=2, prefix_allowed_tokens_fn=fn)


def test_other_allowed_forms_of_the_list(pair):
    """A tuple, a range, NumPy or 0-d tensor integers and a 1-D integer tensor all mean the same list."""
    np = pytest.importorskip("numpy")
    ids = torch.tensor([[1, 2]])
    expected = generate(pair[1], ids, max_new_tokens=3, prefix_allowed_tokens_fn=lambda b, x: [7, 8, 9])
    for form in ((7, 8, 9), range(7, 10), [np.int64(7), 8, torch.tensor(9)], torch.tensor([7, 8, 9])):
        got = generate(pair[1], ids, max_new_tokens=3, prefix_allowed_tokens_fn=lambda b, x, f=form: f)
        assert torch.equal(got, expected)


def dead_end_after_5(batch_id, ids):
    """5 or 6 first; after 5 only 5 again (which no_repeat_ngram_size=1 bans), after 6 a choice."""
    if len(ids) == 6:
        return [5, 6]
    return [5] if int(ids[-1]) == 5 else [7, 8, 9, 10] if len(ids) % 2 else [11, 12, 13]


@pytest.mark.parametrize("kw", [dict(num_beams=2), dict(num_beams=3, num_return_sequences=2),
                                dict(num_beams=4, num_return_sequences=3, eos_token_id=[8, 12])], ids=str)
def test_a_beam_left_without_an_allowed_token_drops_out_as_in_hugging_face(pair, prompts, kw):
    hf, ours = pair
    ids, mask = prompts
    args = dict(attention_mask=mask, max_new_tokens=6, pad_token_id=PAD, no_repeat_ngram_size=1,
                prefix_allowed_tokens_fn=dead_end_after_5, **kw)
    expected = hf.generate(ids, output_scores=True, return_dict_in_generate=True, **args)
    got = generate(ours, ids, return_dict=True, **args)
    assert torch.equal(got.sequences, expected.sequences)
    torch.testing.assert_close(got.sequences_scores, expected.sequences_scores, atol=1e-4, rtol=1e-5)
    assert not (got.sequences[:, 6:] == 5).any()  # the beams through 5 died


def test_a_sample_left_without_an_allowed_token_is_an_error_naming_the_constraint(pair):
    """Two samples of one prompt, one through 5 (a dead end), one through 6. Hugging Face would then draw
    from a row of -inf; here the error says what happened. (When every row of a prompt is stuck, the
    allowed tokens are forced instead, as above.)"""
    ids = torch.tensor([[1, 2, 3, 4, 30, 31]])
    kw = dict(do_sample=True, num_return_sequences=2, prefix_allowed_tokens_fn=dead_end_after_5)
    first = generate(pair[1], ids, max_new_tokens=1, generator=torch.Generator().manual_seed(0), **kw)
    assert sorted(first[:, -1].tolist()) == [5, 6]  # the seed sends one sample each way
    with pytest.raises(ValueError, match="prefix_allowed_tokens_fn allows only tokens that are already"):
        generate(pair[1], ids, max_new_tokens=4, no_repeat_ngram_size=1,
                 generator=torch.Generator().manual_seed(0), **kw)
