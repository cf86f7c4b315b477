"""The writing assistant (tools/assistant.py): scores against a loop and beam search, trimming, bad words vs HF."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers.generation.logits_process import NoBadWordsLogitsProcessor

import minitransformer as mt
from minitransformer.data import ascii_tokenizer
from minitransformer.errors import ConfigError
from minitransformer.tools import assistant


@pytest.fixture(scope="module")
def gpt():
    tok = ascii_tokenizer()
    cfg = mt.TransformerConfig(vocab_size=tok.vocab_size, d_model=32, n_heads=2, n_layers=2, max_len=64)
    torch.manual_seed(0)
    return mt.GPT(cfg).eval(), tok


def test_continuation_log_probs_equal_a_loop_over_prefixes(gpt):
    model, tok = gpt
    prompt, continuation = tok.encode("to be"), tok.encode(", or not")
    ours = assistant.continuation_log_probs(model, prompt, continuation)
    loop = []
    for i, token in enumerate(continuation):  # one forward pass per prefix: the naive way
        with torch.no_grad():
            logits = model(torch.tensor([prompt + continuation[:i]]))[0, -1]
        loop.append(logits.log_softmax(-1)[token])
    torch.testing.assert_close(ours, torch.stack(loop))
    assert (ours <= 0).all()


def test_the_scores_of_beams_are_their_log_probs(gpt):
    """Beam search with length_penalty=0 scores a hypothesis by its summed log-probs: the same number."""
    model, tok = gpt
    prompt = tok.encode("ROMEO:")
    out = mt.generate(model, torch.tensor([prompt]), max_new_tokens=6, num_beams=3, num_return_sequences=3,
                      length_penalty=0.0, return_dict_in_generate=True)
    for row, score in zip(out.sequences, out.sequences_scores, strict=True):
        total = assistant.continuation_log_probs(model, prompt, row[len(prompt) :]).sum()
        torch.testing.assert_close(total, score, atol=1e-4, rtol=1e-4)


def test_continuation_log_probs_refuse_what_the_model_cannot_read(gpt):
    model, tok = gpt
    with pytest.raises(ValueError, match="max_len=64"):
        assistant.continuation_log_probs(model, [1] * 60, [2] * 10)
    with pytest.raises(ValueError, match="at least one token"):
        assistant.continuation_log_probs(model, [], [2])
    with pytest.raises(TypeError, match="prompt_ids"):
        assistant.continuation_log_probs(model, "abc", [2])


@pytest.mark.parametrize("text, stops, expected", [
    ("I will go.\nAnd then", ["\n"], "I will go.\n"),
    ("I will go. And then!", [".", "!"], "I will go."),
    ("no stop here", ["\n"], "no stop here"),
    ("ab\n\ncd", "\n\n", "ab\n\n"),
])
def test_cut_at_stop_known_answers(text, stops, expected):
    assert assistant.cut_at_stop(text, stops) == expected


@given(st.text(alphabet="ab.\n", max_size=30), st.lists(st.sampled_from([".", "\n", "b.", "aa"]), min_size=1))
def test_cut_at_stop_keeps_a_prefix_that_ends_at_the_first_stop(text, stops):
    cut = assistant.cut_at_stop(text, stops)
    assert text.startswith(cut)
    if any(s in text for s in stops):
        assert any(cut.endswith(s) for s in stops)
        assert not any(s in cut[:-1] for s in stops)  # no earlier stop inside it
    else:
        assert cut == text


@pytest.mark.parametrize("strategy", ["beam", "sample"])
def test_suggestions_are_distinct_ranked_and_scored_by_teacher_forcing(gpt, strategy):
    model, tok = gpt
    prompt = "ROMEO:\nI will"  # holds a newline: the prompt must not be read as padding
    found = assistant.suggest(model, tok, prompt, n=4, strategy=strategy, stop=["e", "\n"], max_new_tokens=12,
                              generator=torch.Generator().manual_seed(0))
    assert 1 <= len(found) <= 4 and len({s.text for s in found}) == len(found)
    means = [s.mean_log_prob for s in found]
    assert means == sorted(means, reverse=True)
    for s in found:
        ids = tok.encode(s.text)
        assert s.n_tokens == len(ids) and s.complete == (s.text.endswith("e") or s.text.endswith("\n"))
        assert not any(stop in s.text[:-1] for stop in ("e", "\n"))
        expected = assistant.continuation_log_probs(model, tok.encode(prompt), ids).sum()
        assert math.isclose(s.log_prob, float(expected), rel_tol=1e-5, abs_tol=1e-5)
        assert math.isclose(s.probability, math.exp(s.log_prob))


def test_beam_suggestions_are_the_cut_beams(gpt):
    model, tok = gpt
    prompt = tok.encode("to be")
    beams = mt.generate(model, torch.tensor([prompt]), max_new_tokens=10, num_beams=3, num_return_sequences=3,
                        stop_strings=["o"], tokenizer=tok, pad_token_id=0)
    texts = {assistant.cut_at_stop(tok.decode(row[len(prompt) :].tolist()), ["o"]) for row in beams}
    found = assistant.suggest(model, tok, "to be", n=3, stop=["o"], max_new_tokens=10)
    assert {s.text for s in found} == texts


@pytest.mark.parametrize("kwargs, error, match", [
    ({"n": 0}, ConfigError, "n must be"),
    ({"strategy": "greedy"}, ConfigError, "strategy must be one of"),
    ({"stop": []}, ConfigError, "stop must be"),
    ({"stop": [""]}, ConfigError, "stop must be"),
    ({"max_new_tokens": 0}, ConfigError, "max_new_tokens"),
])
def test_bad_suggest_arguments_are_named(gpt, kwargs, error, match):
    model, tok = gpt
    with pytest.raises(error, match=match):
        assistant.suggest(model, tok, "to be", **kwargs)


@given(st.lists(st.integers(0, 5), min_size=1, max_size=12),
       st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=3), min_size=1, max_size=4))
def test_bad_words_fn_bans_what_hugging_face_bans(context, bad_words):
    vocab = 6
    allowed = assistant.bad_words_fn(bad_words, vocab)(0, torch.tensor(context))
    hf = NoBadWordsLogitsProcessor(bad_words)(torch.tensor([context]), torch.zeros(1, vocab))[0]
    assert allowed == [i for i in range(vocab) if hf[i] > -math.inf]


def test_bad_words_fn_keeps_a_word_out_of_generated_text(gpt):
    model, tok = gpt
    prompt = tok.encode("to be")
    free = mt.generate(model, torch.tensor([prompt]), max_new_tokens=30)[0, len(prompt) :].tolist()
    word = free[3:5]  # a pair the unconstrained model writes
    banned = mt.generate(model, torch.tensor([prompt]), max_new_tokens=30,
                         prefix_allowed_tokens_fn=assistant.bad_words_fn([word], tok.vocab_size))
    new = banned[0, len(prompt) :].tolist()
    assert not any(new[i : i + 2] == word for i in range(len(new) - 1))
    first = next(i for i in range(len(free) - 1) if free[i : i + 2] == word)
    assert new[: first + 1] == free[: first + 1]  # identical until the pair would be completed
    assert new[first + 1] != free[first + 1]


def test_bad_words_fn_rejects_bad_ids():
    with pytest.raises(ValueError, match=r"ids in \[0, 5\)"):
        assistant.bad_words_fn([[1, 7]], 5)
    with pytest.raises(ValueError, match="non-empty"):
        assistant.bad_words_fn([[]], 5)


def test_known_word_share():
    vocabulary = {"to", "be", "or", "not"}
    assert assistant.words("To be, or NOT to bee!") == ["to", "be", "or", "not", "to", "bee"]
    assert assistant.known_word_share("To be, or NOT to bee!", vocabulary) == 5 / 6
    assert math.isnan(assistant.known_word_share("... !", vocabulary))
