"""Count-based n-gram language models: the baseline every neural language model is measured against.

An n-gram model predicts the next token from the n - 1 tokens before it, by counting how often
each continuation followed that context in the training data (Jurafsky & Martin, *Speech and
Language Processing*, 3rd ed., ch. 3). Counts alone give probability 0 to anything unseen, so the
counts are smoothed:

- "add-alpha" (Laplace for alpha = 1, Lidstone otherwise) adds alpha to every count:
      P(w | h) = (c(h, w) + alpha) / (c(h) + alpha * V)
- "interpolated" mixes each order with the one below it, trusting a context more the more often
  it was seen (Witten & Bell 1991):
      P_k(w | h) = (c(h, w) + T(h) * P_{k-1}(w | h')) / (c(h) + T(h))
  where h' drops the oldest token of h and T(h) is the number of distinct tokens seen after h.
  A context never seen (c(h) = 0) falls back to the order below; the bottom is add-alpha unigrams.

The convention for where predictions start: every token after the first of each sequence is
predicted from up to n - 1 tokens before it, and a sequence's start is padded on the left with
its own first token. A bigram model over poems that all begin with "\\n" thus predicts each first
character from "\\n". `fit` counts exactly the events that `nll` scores.

Used in notebook 01 (n-grams and RNNs) and as the character-bigram baseline for the Tang poems.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import torch

from .checks import require_choice, require_int, require_positive
from .errors import ShapeError, describe

SMOOTHINGS = ("add-alpha", "interpolated")


class NGramLM:
    """An n-gram language model over token ids 0 .. vocab_size - 1.

    >>> lm = NGramLM(2, vocab_size=3, alpha=1.0).fit([[0, 1, 2, 1]])
    >>> lm.next_token_probs([1]).tolist()        # after 1: seen 2 once; add-one -> (1, 1, 2) / 4
    [0.25, 0.25, 0.5]
    """

    def __init__(self, n: int, vocab_size: int, alpha: float = 1.0, smoothing: str = "add-alpha"):
        require_int("n", n, minimum=1, hint="1 = unigram, 2 = bigram, ...")
        require_int("vocab_size", vocab_size, minimum=1)
        require_positive("alpha", alpha, hint="the pseudo-count added to every token; 1 is Laplace smoothing")
        require_choice("smoothing", smoothing, SMOOTHINGS)
        self.n, self.vocab_size, self.alpha, self.smoothing = n, vocab_size, float(alpha), smoothing
        self._reset()

    def _reset(self):
        # counts[k][h] = {w: c(h, w)} for contexts h of k - 1 tokens, k = 1 .. n; totals[k][h] = c(h)
        self.counts = [None] + [{} for _ in range(self.n)]
        self.totals = [None] + [Counter() for _ in range(self.n)]  # a Counter: unseen h -> 0
        self.unigram = torch.full((self.vocab_size,), 1.0 / self.vocab_size, dtype=torch.float64)

    # ------------------------------------------------------------------------- counting

    def fit(self, sequences) -> NGramLM:
        """Count every predicted event in `sequences` (a list of id lists, or one id list). Returns self."""
        self._reset()
        grams = Counter()  # (context..., token) -> count, for contexts of n - 1 tokens
        for seq in _as_sequences(sequences, self.vocab_size):
            grams.update(self._windows(seq))
        for k in range(self.n, 0, -1):  # order n first; each lower order drops the oldest context token
            if self.smoothing == "interpolated" or k in (1, self.n):  # add-alpha needs orders n and 1 only
                self._store(k, grams)
            if k > 1:
                shorter = Counter()
                for gram, c in grams.items():
                    shorter[gram[1:]] += c
                grams = shorter
        seen = self._count_vector(1, ())
        self.unigram = (seen + self.alpha) / (seen.sum() + self.alpha * self.vocab_size)  # add-alpha P_1
        return self

    def _store(self, k: int, grams: Counter):
        """Keep order k's counts as {context: {token: count}}, the shape that prediction looks up."""
        follow = defaultdict(dict)
        for gram, c in grams.items():
            follow[gram[:-1]][gram[-1]] = c
            self.totals[k][gram[:-1]] += c
        self.counts[k] = dict(follow)  # a plain dict: looking up an unseen context adds nothing

    def _windows(self, seq):
        """The n-grams (context..., token) of one sequence: one per token after the first."""
        padded = [seq[0]] * (self.n - 1) + list(seq) if seq else []
        # the window starting at padded[i] ends at seq[i]: skip i = 0, the first token is never predicted
        return zip(*(padded[1 + j :] for j in range(self.n)))

    def context_count(self, context) -> int:
        """c(h): how often the model's (n - 1)-token context for `context` was followed by anything."""
        return self.totals[self.n][self._context(context)]

    # ------------------------------------------------------------------------- probabilities

    def log_prob(self, context, token: int) -> float:
        """log P(token | the last n - 1 ids of context), in nats."""
        _check_id("token", token, self.vocab_size)
        return math.log(self._prob(self._context(context), token))

    def next_token_probs(self, context) -> torch.Tensor:
        """P(w | context) for every w: a float64 tensor of shape (V,) that sums to 1."""
        h = self._context(context)
        if self.smoothing == "add-alpha":
            counts = self._count_vector(self.n, h)
            return (counts + self.alpha) / (self.totals[self.n][h] + self.alpha * self.vocab_size)
        probs = self.unigram
        for k in range(2, self.n + 1):  # from the unigram up: each order mixes in its own counts
            hk = h[len(h) - (k - 1) :]
            seen, types = self.totals[k][hk], len(self.counts[k].get(hk, ()))
            if seen:
                probs = (self._count_vector(k, hk) + types * probs) / (seen + types)
        return probs

    def _prob(self, h: tuple, token: int) -> float:
        if self.smoothing == "add-alpha":
            c = self.counts[self.n].get(h, {}).get(token, 0)
            return (c + self.alpha) / (self.totals[self.n][h] + self.alpha * self.vocab_size)
        p = self.unigram[token].item()
        for k in range(2, self.n + 1):
            hk = h[len(h) - (k - 1) :]
            follow = self.counts[k].get(hk)
            if follow:  # a seen context; an unseen one keeps the lower order's p
                p = (follow.get(token, 0) + len(follow) * p) / (self.totals[k][hk] + len(follow))
        return p

    def _count_vector(self, k: int, h: tuple) -> torch.Tensor:
        counts = torch.zeros(self.vocab_size, dtype=torch.float64)
        follow = self.counts[k].get(h, {})
        if follow:
            counts[list(follow)] = torch.tensor(list(follow.values()), dtype=torch.float64)
        return counts

    def _context(self, context) -> tuple:
        """The last n - 1 ids of `context`, left-padded with its first id (the sequence-start rule)."""
        context = _as_ids("context", context, self.vocab_size)
        if self.n == 1:
            return ()
        if not context:
            raise ValueError(
                f"context must hold at least one token id for an n={self.n} model, got an empty context "
                "(a sequence's start is padded with its own first token, so the model needs that token)"
            )
        context = [context[0]] * (self.n - 1) + context
        return tuple(context[len(context) - (self.n - 1) :])

    # ------------------------------------------------------------------------- evaluation and sampling

    def nll(self, sequences) -> float:
        """Mean negative log-likelihood, in nats per predicted token (every token after each sequence's first)."""
        total, count = 0.0, 0
        for seq in _as_sequences(sequences, self.vocab_size):
            for gram in self._windows(seq):
                total -= math.log(self._prob(gram[:-1], gram[-1]))
                count += 1
        if not count:
            raise ValueError("nll: sequences predict no token (each needs at least 2 ids)")
        return total / count

    def perplexity(self, sequences) -> float:
        """exp(nll): the number of equally likely tokens the model is, on average, choosing between."""
        return math.exp(self.nll(sequences))

    def sample(self, context, n_tokens: int, generator: torch.Generator | None = None) -> list[int]:
        """n_tokens new ids drawn one at a time from next_token_probs, each appended to the context."""
        require_int("n_tokens", n_tokens, minimum=0)
        ids = _as_ids("context", context, self.vocab_size)
        new = []
        for _ in range(n_tokens):
            token = torch.multinomial(self.next_token_probs(ids), 1, generator=generator).item()
            ids.append(token)
            new.append(token)
        return new

    def __repr__(self) -> str:
        return f"NGramLM(n={self.n}, vocab_size={self.vocab_size}, alpha={self.alpha}, smoothing={self.smoothing!r})"


# ----------------------------------------------------------------------------- input checks


def _check_id(name, value, vocab_size):
    if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < vocab_size):
        raise ValueError(f"{name} must be a token id in [0, {vocab_size - 1}], got {describe(value)}")


def _as_ids(name, ids, vocab_size) -> list[int]:
    """A list of token ids (from a list, tuple or 1-D tensor), each checked to be in [0, vocab_size)."""
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1 or ids.is_floating_point() or ids.dtype == torch.bool:
            raise ShapeError(f"{name} must be a 1-D tensor of integer token ids, got {describe(ids)}")
        ids = ids.tolist()
    if not isinstance(ids, (list, tuple)):
        raise TypeError(f"{name} must be a list of token ids, got {describe(ids)}")
    ids = list(ids)
    if ids and not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        bad = next(i for i in ids if not isinstance(i, int) or isinstance(i, bool))
        raise TypeError(f"{name} must hold int token ids, found {describe(bad)}")
    if ids and (min(ids) < 0 or max(ids) >= vocab_size):
        bad = min(ids) if min(ids) < 0 else max(ids)
        raise ValueError(f"{name} contains id {bad}, outside the vocabulary [0, {vocab_size - 1}]")
    return ids


def _as_sequences(sequences, vocab_size) -> list[list[int]]:
    """One id list, a list of id lists, or a 1-D / 2-D tensor -> a list of checked id lists."""
    if isinstance(sequences, torch.Tensor) and sequences.dim() == 2:
        sequences = sequences.tolist()
    elif isinstance(sequences, torch.Tensor) or (
        isinstance(sequences, (list, tuple)) and sequences and isinstance(sequences[0], int)
    ):
        sequences = [sequences]
    if not isinstance(sequences, (list, tuple)):
        raise TypeError(f"sequences must be a list of id lists (or one id list), got {describe(sequences)}")
    return [_as_ids(f"sequences[{i}]", seq, vocab_size) for i, seq in enumerate(sequences)]
