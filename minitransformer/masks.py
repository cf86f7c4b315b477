"""Attention masks: which keys each query may look at.

Convention (the same as `torch.nn.functional.scaled_dot_product_attention`): a mask is a bool
tensor, broadcastable to (B, H, Tq, Tk), where True = may attend. Padding information arrives
the Hugging Face way, as an `attention_mask` of shape (B, T) with 1 = real token, 0 = padding.

Note that `torch.nn.MultiheadAttention`'s `key_padding_mask` means the opposite (True = ignore):
convert at that boundary with `~mask`.

Used by attention.py and the models; drawn in notebook 01.
"""

from __future__ import annotations

import torch

from .errors import ShapeError, describe


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
    if t_q > t_k:
        raise ShapeError(
            f"causal_mask needs t_q <= t_k (queries are the newest keys), got t_q={t_q}, t_k={t_k}"
        )
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, Tk) with 1 = real token, 0 = padding  ->  (B, 1, 1, Tk) bool, True = may attend.

    The two singleton axes broadcast over heads and queries: a padded key is hidden from everyone.
    """
    check_attention_mask(attention_mask)
    return attention_mask.bool()[:, None, None, :]


def combine_masks(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """Logical AND of the given masks (None entries are ignored): attend only where all allow."""
    result = None
    for m in masks:
        if m is not None:
            result = m if result is None else result & m
    return result


def check_attention_mask(attention_mask, batch_size: int | None = None, length: int | None = None):
    """Raise a clear error unless `attention_mask` is a (B, T) tensor of 0/1 (or bool) values."""
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(f"attention_mask must be a tensor of 0/1 values, got {describe(attention_mask)}")
    if attention_mask.dim() != 2:
        raise ShapeError(
            f"attention_mask must have shape (batch, seq_len) with 1 = real token and 0 = padding, "
            f"got shape {tuple(attention_mask.shape)}"
        )
    if attention_mask.dtype != torch.bool and not ((attention_mask == 0) | (attention_mask == 1)).all():
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (real token)")
    expected = (batch_size, length)
    got = tuple(attention_mask.shape)
    if any(e is not None and e != g for e, g in zip(expected, got, strict=True)):
        raise ShapeError(f"attention_mask has shape {got}, expected {expected} (batch, total seq_len)")
