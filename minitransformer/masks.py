"""Attention masks: which keys each query may look at.

Convention (the same as `torch.nn.functional.scaled_dot_product_attention`): a mask is a bool
tensor, broadcastable to (B, H, Tq, Tk), where True = may attend. Padding information arrives
the Hugging Face way, as an `attention_mask` of shape (B, T) with 1 = real token, 0 = padding.

Note that `torch.nn.MultiheadAttention`'s `key_padding_mask` means the opposite (True = ignore):
convert at that boundary with `~mask`.

Used by attention.py and the models; drawn in notebook 02.
"""

from __future__ import annotations

import torch

from . import checks
from .checks import checked
from .errors import ShapeError


def _queries_are_newest_keys(args):
    t_q, t_k = args["t_q"], args["t_k"]
    if t_k is not None and t_q > t_k:
        raise ShapeError(f"causal_mask needs t_q <= t_k (queries are the newest keys), got t_q={t_q}, t_k={t_k}")


@checked(_queries_are_newest_keys)
def causal_mask(t_q: int, t_k: int | None = None, device=None) -> torch.Tensor:
    """(Tq, Tk) bool: query i may attend to key j when j <= i + (Tk - Tq).

    Aligned bottom-right, so the *last* query always sees every key. With a KV cache the queries
    are the newest Tq tokens of Tk, and this is exactly what they may see.

    >>> causal_mask(3).int()
    tensor([[1, 0, 0],
            [1, 1, 0],
            [1, 1, 1]], dtype=torch.int32)
    """
    t_k = t_q if t_k is None else t_k
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


@checked(attention_mask=checks.attention_mask)
def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, Tk) with 1 = real token, 0 = padding  ->  (B, 1, 1, Tk) bool, True = may attend.

    The two singleton axes broadcast over heads and queries: a padded key is hidden from everyone.
    """
    return attention_mask.bool()[:, None, None, :]


def combine_masks(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """Logical AND of the given masks (None entries are ignored): attend only where all allow."""
    result = None
    for m in masks:
        if m is not None:
            result = m if result is None else result & m
    return result


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding: for mask [0, 0, 1, 1] -> [0, 0, 0, 1] (as Hugging Face does).

    A left-padded prompt then gives its first real token position 0, as if it had no padding.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
