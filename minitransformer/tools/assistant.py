"""A writing assistant on a small causal language model: ranked suggestions that stop where a line ends.

    from minitransformer.tools import assistant
    for s in assistant.suggest(model, tokenizer, "ROMEO:\\nI will", n=5):
        print(f"{s.probability:.2e}  {s.text!r}")

What an editor's autocomplete does with a language model, in three small pieces:

- `suggest`: several continuations of a prompt (beam search, or sampling), each cut just after its
  first stop string (a line end by default), scored by teacher forcing and ranked by the mean
  log-probability per token. The sum would favour short suggestions, since every token costs
  log p <= 0;
- `continuation_log_probs`: log p(token | everything before it) for each token of a continuation,
  in one forward pass (teacher forcing), the score every ranking here rests on;
- `cut_at_stop`: the text up to and including the first stop string. `generate(stop_strings=...)`
  stops a sequence there but, like Hugging Face's `stop_strings`, returns the token that completed
  the stop (with whatever it holds past the stop), and the padding of rows that stopped early:
  trimming the text is the caller's job;
- `bad_words_fn`: Hugging Face's `bad_words_ids` rule as a `prefix_allowed_tokens_fn`: a banned
  sequence's last token is forbidden wherever the text so far ends with the rest of it.

`known_word_share` measures how much of a text is made of words from a vocabulary (notebook 13
uses the words of Tiny Shakespeare's training split). Used in notebook 13 (applications).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from ..checks import require_int
from ..errors import ConfigError, describe
from ..generation import generate

STRATEGIES = ("beam", "sample")
WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Suggestion:
    """One suggested continuation: its text and the model's log-probability of its tokens."""

    text: str
    log_prob: float  # sum over its tokens of log p(token | everything before it)
    n_tokens: int
    complete: bool  # it ends at a stop string (False: max_new_tokens ran out first)

    @property
    def mean_log_prob(self) -> float:
        return self.log_prob / self.n_tokens

    @property
    def probability(self) -> float:
        """p(the whole suggestion | the prompt)."""
        return math.exp(self.log_prob)

    @property
    def per_token_probability(self) -> float:
        """The geometric mean of its tokens' probabilities: exp(mean log-prob)."""
        return math.exp(self.mean_log_prob)


def _ids(name, ids) -> list[int]:
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1 or ids.is_floating_point():
            raise ValueError(f"{name} must be a 1-D integer tensor or a list of ids, got {describe(ids)}")
        return ids.tolist()
    if not isinstance(ids, Sequence) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise TypeError(f"{name} must be a list of token ids (ints) or a 1-D tensor, got {describe(ids)}")
    return list(ids)


@torch.inference_mode()
def continuation_log_probs(model, prompt_ids, continuation_ids) -> torch.Tensor:
    """log p(c_i | prompt, c_1 .. c_{i-1}) for each token c_i of the continuation: (N,) float tensor.

    One forward pass over prompt + continuation (teacher forcing): the logits at position t predict
    token t + 1. The model must see it all at once: len(prompt) + len(continuation) - 1 <= max_len.
    """
    prompt, continuation = _ids("prompt_ids", prompt_ids), _ids("continuation_ids", continuation_ids)
    if not prompt or not continuation:
        raise ValueError(f"prompt_ids and continuation_ids need at least one token each, got "
                         f"{len(prompt)} and {len(continuation)}")
    ids = prompt + continuation
    context = model.config.max_len
    if len(ids) - 1 > context:
        raise ValueError(f"prompt and continuation hold {len(ids)} tokens: the model reads at most "
                         f"max_len={context} (+ 1 predicted); shorten the prompt")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        logits = model(torch.tensor([ids[:-1]], device=device))[0].float()  # (T - 1, V)
    finally:
        model.train(was_training)
    log_probs = logits[len(prompt) - 1 :].log_softmax(dim=-1)  # (N, V): the rows that predict the continuation
    return log_probs.gather(1, torch.tensor(continuation, device=device)[:, None])[:, 0].cpu()


def cut_at_stop(text: str, stops: Iterable[str]) -> str:
    """`text` up to and including the earliest stop string in it; all of it when none occurs."""
    stops = [stops] if isinstance(stops, str) else list(stops)
    ends = [text.find(s) + len(s) for s in stops if s and s in text]
    return text[: min(ends)] if ends else text


def _new_tokens_until_stop(tokenizer, new_ids, stops) -> list[int]:
    """The shortest start of new_ids whose text holds a stop string (all of them when none does)."""
    for k in range(1, len(new_ids) + 1):
        if any(s in tokenizer.decode(new_ids[:k]) for s in stops):
            return new_ids[:k]
    return new_ids


def _check_suggest(n, strategy, stop, max_new_tokens):
    require_int("n", n, 1)
    require_int("max_new_tokens", max_new_tokens, 1)
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {STRATEGIES}, got {describe(strategy)}")
    if not stop or not all(isinstance(s, str) and s for s in stop):
        raise ConfigError(f"stop must be a non-empty list of non-empty strings, got {describe(stop)}")


def suggest(model, tokenizer, prompt: str, n: int = 5, *, strategy: str = "beam", stop=("\n",),
            max_new_tokens: int = 60, generator=None, **knobs) -> list[Suggestion]:
    """Up to n different continuations of `prompt`, each ending at its first stop string, best first.

    strategy "beam": the n best beams of a beam search with n beams (more with num_beams=);
    "sample": n samples (seeded by generator=; top_k=, temperature=, ... are generate's knobs).
    Each suggestion is re-scored by `continuation_log_probs` and ranked by its mean log-prob per
    token; identical texts (likely when sampling) count once.
    """
    stop = [stop] if isinstance(stop, str) else list(stop)
    _check_suggest(n, strategy, stop, max_new_tokens)
    prompt_ids = tokenizer.encode(prompt)
    if not prompt_ids:
        raise ValueError("prompt is empty; give at least one character to continue from")
    if strategy == "beam":
        knobs = {"num_beams": max(n, knobs.pop("num_beams", n)), **knobs}
    else:
        knobs = {"do_sample": True, **knobs}
    ids = torch.tensor([prompt_ids], device=next(model.parameters()).device)
    # A row that stops early grows by pad_token_id; the explicit mask says the prompt itself holds no padding.
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = generate(model, ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                   num_return_sequences=n, stop_strings=stop, tokenizer=tokenizer, pad_token_id=pad,
                   generator=generator, **knobs)
    found: dict[str, Suggestion] = {}
    for row in out[:, len(prompt_ids) :].tolist():
        new = _new_tokens_until_stop(tokenizer, [i for i in row if i >= 0], stop)
        text = cut_at_stop(tokenizer.decode(new), stop)
        if text and text not in found:
            log_prob = float(continuation_log_probs(model, prompt_ids, new).sum())
            found[text] = Suggestion(text, log_prob, len(new), complete=any(text.endswith(s) for s in stop))
    return sorted(found.values(), key=lambda s: s.mean_log_prob, reverse=True)


def bad_words_fn(bad_words_ids, vocab_size: int):
    """Hugging Face's `bad_words_ids` as a `prefix_allowed_tokens_fn(batch_id, input_ids) -> allowed ids`.

    bad_words_ids: a list of token-id lists. A one-token entry is never allowed; a longer one loses its
    last token wherever input_ids (the row so far, prompt included) ends with the rest of it, as in
    Hugging Face's NoBadWordsLogitsProcessor. With characters as tokens, banning "love" also bans
    the "love" inside "glove" and "lovely".
    """
    require_int("vocab_size", vocab_size, 1)
    words = [_ids("bad_words_ids entry", w) for w in bad_words_ids]
    for w in words:
        if not w or not all(0 <= i < vocab_size for i in w):
            raise ValueError(f"bad_words_ids entries must be non-empty lists of ids in [0, {vocab_size}), got {w}")

    def allowed(batch_id: int, input_ids: torch.Tensor) -> list[int]:
        tail = input_ids.tolist()
        banned = {w[-1] for w in words if len(w) == 1 or tail[len(tail) - len(w) + 1 :] == w[:-1]}
        return [i for i in range(vocab_size) if i not in banned]

    return allowed


def words(text: str) -> list[str]:
    """The words of `text`: runs of letters, lower-cased ("Thou'rt" -> ["thou", "rt"])."""
    return WORD.findall(text.lower())


def known_word_share(text: str, vocabulary: set[str]) -> float:
    """The share of `text`'s words that are in `vocabulary` (NaN when the text has no word)."""
    found = words(text)
    return sum(w in vocabulary for w in found) / len(found) if found else math.nan
