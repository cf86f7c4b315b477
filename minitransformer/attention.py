"""Scaled dot-product attention and multi-head attention, with a key/value cache.

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V                      ("Attention Is All You Need", eq. 1)

Two paths compute the same thing, and return (output, weights):
- the *reference* path writes the formula out (scores, scaling, masking, softmax) and returns the
  attention weights, which the notebooks draw;
- the *fast* path calls PyTorch's fused `F.scaled_dot_product_attention` and returns weights=None.
tests/test_attention.py keeps them equal. Masks are bool, True = may attend (see masks.py).

Letters: B batch, H heads, Tq queries, Tk keys, D = d_head, C = d_model.
Used in notebooks 02 (attention) and 04 (multi-head attention, KV cache).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from . import matvec
from .checks import checked
from .errors import ShapeError, describe
from .kv_cache import KVCache
from .masks import causal_mask
from .positional import apply_rotary

__all__ = ["KVCache", "MultiHeadAttention", "attention_fast", "attention_reference", "scaled_dot_product_attention"]


def _check_qkv(args):
    q, k, v, mask = args["q"], args["k"], args["v"], args["mask"]
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {describe(t)}")
        if t.dim() < 2:
            raise ShapeError(f"{name} must have shape (..., seq_len, d_head), got {tuple(t.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ShapeError(f"q and k must share their last (d_head) axis, got {tuple(q.shape)} and {tuple(k.shape)}")
    if k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"k and v must have the same number of keys, got {tuple(k.shape)} and {tuple(v.shape)}")
    if mask is not None:
        _check_mask(mask, want=(*q.shape[:-1], k.shape[-2]))


def _check_mask(mask, want):
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(
            f"mask must be a bool tensor (True = may attend), got {describe(mask)}; "
            "a 0/1 mask converts with mask.bool()"
        )
    try:
        torch.broadcast_shapes(mask.shape, want)
    except RuntimeError:
        raise ShapeError(f"mask of shape {tuple(mask.shape)} does not broadcast to (..., Tq, Tk) = {want}") from None


@checked(_check_qkv)
def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0, *, need_weights=True, is_causal=False):
    """softmax(q kᵀ / √D) v, returning (output, weights).

    q: (B, H, Tq, D); k: (B, H, Tk, D); v: (B, H, Tk, Dv) (any number of leading axes works).
    mask: bool, broadcastable to (B, H, Tq, Tk), True = may attend.
    is_causal: also hide future keys (bottom-right aligned, so Tq < Tk works with a KV cache).
    need_weights: False takes the fused fast path and returns weights=None.
    Returns output (B, H, Tq, Dv) and weights (B, H, Tq, Tk), whose rows sum to 1; a query that may
    attend to no key at all gets zero weights and a zero output (PyTorch's fused kernel agrees).
    """
    attend = attention_reference if need_weights else attention_fast
    return attend(q, k, v, mask, dropout_p, is_causal=is_causal)


def attention_reference(q, k, v, mask=None, dropout_p=0.0, *, is_causal=False):
    """The formula written out step by step; returns (output, weights)."""
    if is_causal:
        mask = _with_causal(mask, q.shape[-2], k.shape[-2], q.device)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, Tq, Tk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
        # A query that may see no key (say, a padding position) would get softmax(all -inf) = NaN.
        # Give it finite scores here and zero weights below.
        blind = ~mask.any(dim=-1, keepdim=True)  # (B, H, Tq, 1)
        scores = scores.masked_fill(blind, 0.0)
    weights = scores.softmax(dim=-1)  # (B, H, Tq, Tk)
    if mask is not None:
        weights = weights.masked_fill(blind, 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights  # (B, H, Tq, Dv)


def attention_fast(q, k, v, mask=None, dropout_p=0.0, *, is_causal=False):
    """The same contract through PyTorch's fused kernel, which computes no weights: (output, None)."""
    t_q, t_k = q.shape[-2], k.shape[-2]
    if is_causal and (mask is not None or t_q != t_k):  # the kernel's causal mask is top-left aligned
        if t_q > 1:  # a single newest query sees every key: no mask needed
            mask = _with_causal(mask, t_q, t_k, q.device)
        is_causal = False
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)
    return out, None


def _with_causal(mask, t_q, t_k, device):
    causal = causal_mask(t_q, t_k, device=device)
    return causal if mask is None else mask & causal


def _heads_divide_width(args):
    if args["d_model"] % args["n_heads"]:
        raise ValueError(f"d_model={args['d_model']} must be divisible by n_heads={args['n_heads']}")


class MultiHeadAttention(nn.Module):
    """H attention heads side by side, each in its own D = C / H dimensional subspace.

        head_i = Attention(x W_q_i, m W_k_i, m W_v_i)       MultiHead = Concat(head_1..head_H) W_o

    Self-attention when `memory` is None (m = x); cross-attention otherwise (m = the encoder output).
    The heads' outputs are concatenated, then projected by W_o: not summed.
    """

    @checked(_heads_divide_width)
    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True, attn_impl="fast"):
        super().__init__()
        self.d_model, self.n_heads, self.dropout, self.attn_impl = d_model, n_heads, dropout, attn_impl
        self.w_q = nn.Linear(d_model, d_model, bias=bias)
        self.w_k = nn.Linear(d_model, d_model, bias=bias)
        self.w_v = nn.Linear(d_model, d_model, bias=bias)
        self.w_o = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x, memory=None, mask=None, *, cache=None, rotary=None, need_weights=False, is_causal=False):
        """x: (B, Tq, C); memory: (B, Tk, C) or None; mask: bool, broadcastable to (B, H, Tq, Tk).

        cache: a KVCache to extend (self-attention) or to fill once and reuse (cross-attention).
        rotary: (cos, sin) tables for the new positions, when the model uses RoPE.
        Returns (output (B, Tq, C), weights (B, H, Tq, Tk) or None).
        """
        q = self._split_heads(self.w_q(x))  # (B, H, Tq, D)
        if memory is not None and cache is not None and cache.length:
            k, v = cache.keys, cache.values  # the encoder output does not change while decoding
        else:
            source = x if memory is None else memory
            k = self._split_heads(self.w_k(source))  # (B, H, Tk, D)
            v = self._split_heads(self.w_v(source))
            if rotary is not None:
                q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
            if cache is not None:
                k, v = cache.append(k, v)  # (B, H, past + Tk, D)
        # The reference path always runs when asked for: the fused kernel computes no weights.
        attend = attention_reference if need_weights or self.attn_impl == "reference" else attention_fast
        dropout_p = self.dropout if self.training else 0.0
        out, weights = attend(q, k, v, mask, dropout_p, is_causal=is_causal)
        out = rearrange(out, "b h t d -> b t (h d)")  # (B, Tq, C): heads concatenated
        return self.w_o(out), weights

    def step(self, x, cache: KVCache, mask=None, rotary=None):
        """`forward` for one new position of causal self-attention, as plain tensor functions.

        Decoding calls this once per layer and token, where module calls and einops parsing cost more
        than the arithmetic. x: (B, 1, C); mask: (B, 1, 1, L) bool or None -> (B, 1, C).
        """
        B, T, C = x.shape
        w_qkv, b_qkv, w_o, b_o = cache.step_weights(self)
        qkv = matvec.linear(x, w_qkv, b_qkv).view(B, T, 3, self.n_heads, C // self.n_heads)  # (B, 1, 3, H, D)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, 1, D)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        k, v = cache.append(k, v)  # (B, H, L, D): every position so far
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, 1, D)
        return matvec.linear(out.transpose(1, 2).reshape(B, T, C), w_o, b_o)  # heads concatenated

    def step_weights(self):
        """What `step` reads: the stacked W_q, W_k, W_v and W_o, each split over the threads where
        that pays (matvec.py)."""
        return *matvec.for_decoding(*self.stacked_qkv()), *matvec.for_decoding(self.w_o.weight, self.w_o.bias)

    def stacked_qkv(self):
        """W_q, W_k, W_v stacked into one (3C, C) matrix, for one product instead of three; and their
        biases stacked (3C,), or None. New tensors, detached from the parameters."""
        biases = (self.w_q.bias, self.w_k.bias, self.w_v.bias)
        w_qkv = torch.cat([self.w_q.weight, self.w_k.weight, self.w_v.weight]).detach()
        return w_qkv, None if biases[0] is None else torch.cat(biases).detach()

    def _split_heads(self, x):
        return rearrange(x, "b t (h d) -> b h t d", h=self.n_heads)

    def extra_repr(self):
        return f"d_model={self.d_model}, n_heads={self.n_heads}, d_head={self.d_model // self.n_heads}"
