"""NGramLM against naive counting written here, probability laws, and its argument checks."""

import itertools
import math
from collections import Counter

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from minitransformer.data import ascii_tokenizer
from minitransformer.errors import ConfigError
from minitransformer.ngram import NGramLM

SMOOTHINGS = ["add-alpha", "interpolated"]


@st.composite
def corpora(draw, max_vocab=5):
    """(n, vocab_size, sequences): a few short random id sequences."""
    vocab = draw(st.integers(1, max_vocab))
    n = draw(st.integers(1, 4))
    seqs = draw(st.lists(st.lists(st.integers(0, vocab - 1), max_size=8), min_size=1, max_size=4))
    return n, vocab, seqs


# ----------------------------------------------------------------------------- the naive reference


def naive_events(sequences, n):
    """(context, token) for every token after the first: the n - 1 tokens before it, the start padded
    on the left with the sequence's first token."""
    events = []
    for seq in sequences:
        for i in range(1, len(seq)):
            before = seq[max(0, i - (n - 1)) : i]
            context = [seq[0]] * (n - 1 - len(before)) + before
            events.append((tuple(context), seq[i]))
    return events


def naive_prob(events, h, w, n, vocab, alpha, smoothing):
    """P(w | h) from a list of events by counting, with plain loops."""

    def counts(k, context):  # c(context, w) and c(context) over contexts of length k - 1
        both = sum(1 for ctx, tok in events if ctx[len(ctx) - (k - 1) :] == context and tok == w)
        alone = sum(1 for ctx, _ in events if ctx[len(ctx) - (k - 1) :] == context)
        types = len({tok for ctx, tok in events if ctx[len(ctx) - (k - 1) :] == context})
        return both, alone, types

    if smoothing == "add-alpha":
        both, alone, _ = counts(n, h)
        return (both + alpha) / (alone + alpha * vocab)
    both, alone, _ = counts(1, ())
    p = (both + alpha) / (alone + alpha * vocab)
    for k in range(2, n + 1):
        both, alone, types = counts(k, h[len(h) - (k - 1) :])
        if alone:
            p = (both + types * p) / (alone + types)
    return p


def all_contexts(n, vocab):
    return [list(c) for c in itertools.product(range(vocab), repeat=max(n - 1, 1))]


# ----------------------------------------------------------------------------- probability laws


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
@given(corpus=corpora(), alpha=st.sampled_from([1e-3, 0.1, 1.0, 2.5]))
def test_probabilities_sum_to_one_for_every_context(corpus, alpha, smoothing):
    n, vocab, seqs = corpus
    lm = NGramLM(n, vocab, alpha=alpha, smoothing=smoothing).fit(seqs)
    for context in all_contexts(n, vocab):
        probs = lm.next_token_probs(context)
        assert probs.shape == (vocab,) and (probs > 0).all()
        torch.testing.assert_close(probs.sum(), torch.tensor(1.0, dtype=torch.float64))
        logs = torch.tensor([lm.log_prob(context, w) for w in range(vocab)], dtype=torch.float64)
        torch.testing.assert_close(logs.exp(), probs)


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
@given(corpus=corpora(), alpha=st.sampled_from([0.01, 0.5, 1.0]))
def test_nll_equals_naive_counting(corpus, alpha, smoothing):
    n, vocab, seqs = corpus
    events = naive_events(seqs, n)
    assume(events)
    lm = NGramLM(n, vocab, alpha=alpha, smoothing=smoothing).fit(seqs)
    naive = -sum(math.log(naive_prob(events, h, w, n, vocab, alpha, smoothing)) for h, w in events) / len(events)
    assert lm.nll(seqs) == pytest.approx(naive, rel=1e-10)
    assert lm.perplexity(seqs) == pytest.approx(math.exp(naive), rel=1e-10)


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
@given(corpus=corpora(), alpha=st.sampled_from([0.01, 1.0]))
def test_unseen_data_matches_naive_too(corpus, alpha, smoothing):
    """Probabilities of held-out events (contexts and tokens never counted) follow the same formulas."""
    n, vocab, seqs = corpus
    events = naive_events(seqs, n)
    lm = NGramLM(n, vocab, alpha=alpha, smoothing=smoothing).fit(seqs)
    for context in all_contexts(n, vocab):
        h = tuple(context[-(n - 1) :]) if n > 1 else ()
        for w in range(vocab):
            expected = naive_prob(events, h, w, n, vocab, alpha, smoothing)
            assert math.exp(lm.log_prob(context, w)) == pytest.approx(expected, rel=1e-10)


def test_perplexity_is_exp_nll_on_real_text(text):
    tok = ascii_tokenizer()
    train, val = tok.encode(text[:50_000]), tok.encode(text[50_000:60_000])
    for smoothing in SMOOTHINGS:
        lm = NGramLM(3, tok.vocab_size, alpha=0.5, smoothing=smoothing).fit(train)
        assert lm.perplexity(val) == pytest.approx(math.exp(lm.nll(val)), rel=1e-12)
        assert 1 < lm.perplexity(val) < tok.vocab_size  # better than uniform, worse than certain


def test_bigram_equals_pair_counts_on_real_text(text):
    """A vectorized reference for n = 2: the (V, V) table of neighbouring pairs, counted with bincount."""
    tok, alpha = ascii_tokenizer(), 0.3
    ids = torch.tensor(tok.encode(text[:100_000]))
    V = tok.vocab_size
    pairs = torch.bincount(ids[:-1] * V + ids[1:], minlength=V * V).reshape(V, V).double()
    table = (pairs + alpha) / (pairs.sum(1, keepdim=True) + alpha * V)  # row a: P(. | a)
    lm = NGramLM(2, V, alpha=alpha).fit(ids.tolist())
    for a in {ids[0].item(), *ids[:5000].unique().tolist()}:
        torch.testing.assert_close(lm.next_token_probs([a]), table[a])
    expected = -table[ids[:-1], ids[1:]].log().mean().item()
    assert lm.nll(ids.tolist()) == pytest.approx(expected, rel=1e-9)


# ----------------------------------------------------------------------------- known answers


@given(corpus=corpora())
def test_alpha_to_zero_gives_maximum_likelihood_on_seen_contexts(corpus):
    n, vocab, seqs = corpus
    events = naive_events(seqs, n)
    assume(events)
    lm = NGramLM(n, vocab, alpha=1e-12).fit(seqs)
    contexts = Counter(h for h, _ in events)
    pairs = Counter(events)
    for h, total in contexts.items():
        probs = lm.next_token_probs(list(h) if h else [0])
        ml = torch.tensor([pairs[(h, w)] / total for w in range(vocab)], dtype=torch.float64)
        torch.testing.assert_close(probs, ml, rtol=0, atol=1e-9)


@given(corpus=corpora(max_vocab=6))
def test_unigram_equals_token_frequencies(corpus):
    _, vocab, seqs = corpus
    predicted = [t for seq in seqs for t in seq[1:]]  # the first token of each sequence is not predicted
    assume(predicted)
    lm = NGramLM(1, vocab, alpha=1e-12).fit(seqs)
    freqs = torch.tensor([predicted.count(w) / len(predicted) for w in range(vocab)], dtype=torch.float64)
    torch.testing.assert_close(lm.next_token_probs([]), freqs, rtol=0, atol=1e-9)
    assert lm.context_count([]) == len(predicted)


def test_start_of_sequence_is_predicted_from_its_first_token():
    tok = ascii_tokenizer()
    poems = [tok.encode("\nab\n"), tok.encode("\nac\n")]
    lm = NGramLM(2, tok.vocab_size, alpha=1e-12).fit(poems)
    newline, a = tok.encode("\n")[0], tok.encode("a")[0]
    assert lm.next_token_probs([newline])[a] == pytest.approx(1.0)  # each poem's first "\n" is followed by a
    assert lm.context_count([newline]) == 2  # the final "\n"s are followed by nothing
    assert lm.next_token_probs([a]).max() == pytest.approx(1 / 2)  # b or c
    tri = NGramLM(3, tok.vocab_size, alpha=1e-12).fit(poems)
    assert tri.context_count([newline, newline]) == 2  # the first "a" of each poem, seen after ("\n", "\n")
    torch.testing.assert_close(tri.next_token_probs([newline]), tri.next_token_probs([newline, newline]))


def test_interpolation_backs_off_to_lower_orders():
    lm = NGramLM(3, 4, alpha=1.0, smoothing="interpolated").fit([[0, 1, 2, 0, 1, 2, 3]])
    unseen = lm.next_token_probs([3, 3])  # no trigram or bigram context (3, 3) / (3,) was counted
    torch.testing.assert_close(unseen, lm.unigram)
    assert lm.next_token_probs([0, 1])[2] > 0.5  # "0 1" was always followed by 2


def test_sample_is_reproducible_and_follows_the_distribution(text):
    tok = ascii_tokenizer()
    lm = NGramLM(2, tok.vocab_size, alpha=0.01).fit(tok.encode(text[:20_000]))
    first = lm.sample([tok.encode("q")[0]], 20, torch.Generator().manual_seed(1))
    assert first == lm.sample([tok.encode("q")[0]], 20, torch.Generator().manual_seed(1))
    assert len(first) == 20 and all(0 <= t < tok.vocab_size for t in first)
    assert lm.sample([3], 0) == []
    g, context = torch.Generator().manual_seed(2), [tok.encode("t")[0]]
    draws = Counter(lm.sample(context, 1, g)[0] for _ in range(3000))
    probs = lm.next_token_probs(context)
    for token, p in enumerate(probs.tolist()):  # within 5 standard errors of the expected share
        assert abs(draws[token] / 3000 - p) <= 5 * math.sqrt(p * (1 - p) / 3000) + 1e-3


def test_fit_accepts_one_sequence_a_list_or_a_tensor():
    seqs = [[0, 1, 2, 1], [2, 2, 0]]
    one = NGramLM(2, 3).fit(seqs)
    for same in (NGramLM(2, 3).fit(torch.tensor([0, 1, 2, 1])), NGramLM(2, 3).fit([0, 1, 2, 1])):
        torch.testing.assert_close(same.next_token_probs([1]), NGramLM(2, 3).fit([seqs[0]]).next_token_probs([1]))
    padded = NGramLM(2, 3).fit(torch.tensor([[0, 1, 2, 1], [2, 2, 0, 0]]))
    assert padded.context_count([0]) == one.context_count([0]) + 1  # the extra 0 -> 0 of the second row
    refit = NGramLM(2, 3).fit(seqs).fit([[0, 0]])
    assert refit.context_count([1]) == 0  # fit starts from zero counts


# ----------------------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n=0, vocab_size=5), "n must be a positive integer, got 0"),
        (dict(n=2.0, vocab_size=5), "n must be a positive integer, got 2.0"),
        (dict(n=2, vocab_size=0), "vocab_size must be a positive integer, got 0"),
        (dict(n=2, vocab_size=5, alpha=0), "alpha must be a finite number > 0, got 0"),
        (dict(n=2, vocab_size=5, alpha=-1.0), "alpha must be a finite number > 0"),
        (dict(n=2, vocab_size=5, smoothing="kneser-ney"), r"smoothing must be one of \('add-alpha', 'interpolated'\)"),
    ],
)
def test_bad_settings_raise_clear_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        NGramLM(**kwargs)


def test_bad_ids_raise_clear_errors():
    lm = NGramLM(2, 5).fit([[0, 1, 2]])
    with pytest.raises(ValueError, match=r"sequences\[1\] contains id 7, outside the vocabulary \[0, 4\]"):
        NGramLM(2, 5).fit([[0, 1], [7, 1]])
    with pytest.raises(ValueError, match=r"contains id -1"):
        lm.nll([[0, -1]])
    with pytest.raises(TypeError, match=r"must hold int token ids, found 'a'"):
        NGramLM(2, 5).fit([["a", "b"]])
    with pytest.raises(TypeError, match="sequences must be a list of id lists"):
        NGramLM(2, 5).fit("abc")
    with pytest.raises(ValueError, match="token must be a token id in \\[0, 4\\], got 5"):
        lm.log_prob([0], 5)
    with pytest.raises(ValueError, match="context must hold at least one token id for an n=2 model"):
        lm.next_token_probs([])
    with pytest.raises(ValueError, match="predict no token"):
        lm.nll([[1], []])
    with pytest.raises(ConfigError, match="n_tokens must be an integer >= 0, got -1"):
        lm.sample([0], -1)
