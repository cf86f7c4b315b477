"""Constrained decoding: a function of the sequence so far says which tokens may come next.

`generate(..., prefix_allowed_tokens_fn=fn)` calls fn(batch_id, ids) for every row at every step:
batch_id is the prompt's index in the batch and ids the row's 1-D token ids so far, prompt (and its
left padding) included. fn returns the token ids allowed next; every other token gets score -inf.
A template becomes a grammar this way: a date format, a JSON shape, or the fixed line lengths and
punctuation of a Tang poem (poetry.py, notebook 14).

Hugging Face's semantics (transformers 5, `PrefixConstrainedLogitsProcessor` in
generation/logits_process.py, placed by `GenerationMixin._get_logits_processor`):
* the constraint comes after the repetition penalty, the no-repeat n-gram ban and min_new_tokens,
  and before temperature, top-k, top-p, ... So the warpers only see allowed tokens, and the
  repetition settings may remove allowed ones;
* the rows of one prompt (its num_beams beams, or its num_return_sequences samples) share a
  batch_id: row r belongs to prompt r // max(num_beams, num_return_sequences);
* if every allowed token of every row of a prompt was already -inf (a repetition setting banned
  them all), the constraint wins: the allowed tokens get score 0 and the others -inf, so the
  output still obeys fn.
Beyond Hugging Face, what fn returns is checked: an empty list, ids outside the vocabulary or
anything but a list of ints raise an error naming fn, the batch id and the value.
"""

from __future__ import annotations

import math
import operator

import torch

from ..errors import describe

NAME = "prefix_allowed_tokens_fn"


def check_constraint(fn) -> None:
    """fn must be callable as fn(batch_id, input_ids) (or None: no constraint)."""
    if fn is not None and not callable(fn):
        raise TypeError(f"{NAME} must be a function (batch_id, input_ids) -> list of allowed token ids, "
                        f"or None; got {describe(fn)}")


def allowed_ids(fn, batch_id: int, row: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """fn(batch_id, row), checked: the allowed ids as a 1-D long tensor on row's device."""
    allowed = fn(batch_id, row)
    where = f"{NAME} returned for batch_id={batch_id} (sequence length {row.shape[0]})"
    if isinstance(allowed, torch.Tensor):
        integer = not (allowed.is_floating_point() or allowed.is_complex() or allowed.dtype is torch.bool)
        if allowed.dim() != 1 or not integer:
            raise TypeError(f"{where} {describe(allowed)}: it must return a list of token ids (ints)")
        ids = allowed.to(device=row.device, dtype=torch.long)
    elif isinstance(allowed, (list, tuple, range)):
        ids = torch.tensor([_as_id(i, where, allowed) for i in allowed], dtype=torch.long, device=row.device)
    else:
        raise TypeError(f"{where} {describe(allowed)}: it must return a list of token ids (ints)")
    if ids.numel() == 0:
        raise ValueError(f"{where} an empty list: no token may come next, so the constraint cannot be "
                         "satisfied; allow at least one token at every step")
    outside = ids[(ids < 0) | (ids >= vocab_size)]
    if outside.numel():
        raise ValueError(f"{where} a list holding token id {int(outside[0])}, outside the vocabulary: ids go "
                         f"from 0 to {vocab_size - 1}")
    return ids


def _as_id(i, where, allowed) -> int:
    """One allowed id as an int: Python, NumPy and 0-d tensor integers pass; bools, floats and text do not."""
    try:
        if not isinstance(i, bool):
            return operator.index(i)
    except TypeError:
        pass
    raise TypeError(f"{where} {describe(allowed)}, which holds {describe(i)}: it must return a list of token "
                    "ids (ints)")


def constrain(scores: torch.Tensor, input_ids: torch.Tensor, fn, rows_per_prompt: int) -> torch.Tensor:
    """Keep the scores of the tokens fn allows, -inf elsewhere.  scores (N, V), input_ids (N, L) -> (N, V).

    Rows r = b * rows_per_prompt ... (b + 1) * rows_per_prompt - 1 are prompt b's beams or samples.
    """
    N, V = scores.shape
    mask = torch.full_like(scores, -math.inf)  # (N, V): 0 where allowed
    for r in range(N):
        mask[r, allowed_ids(fn, r // rows_per_prompt, input_ids[r], V)] = 0.0
    constrained = scores + mask
    # A prompt whose rows all lost every allowed token: force those tokens (score 0), as Hugging Face does.
    hopeless = constrained.amax(dim=-1).isneginf().view(-1, rows_per_prompt).all(dim=-1)  # (N / rows,)
    hopeless = hopeless.repeat_interleave(rows_per_prompt)[:, None]  # (N, 1)
    return torch.where(hopeless, mask, constrained)


def only_dead_beams(best: torch.Tensor, num_beams: int) -> bool:
    """best (N,): each row's highest processed score. True when the only rows without a finite one are
    beams of a beam search whose prompt has another beam left: a constraint (or a repetition ban) may
    leave a beam no continuation, and it then simply drops out of the search, as in Hugging Face."""
    if num_beams == 1 or torch.isnan(best).any() or (best == math.inf).any():
        return False
    return bool(torch.isfinite(best).view(-1, num_beams).any(dim=1).all())
