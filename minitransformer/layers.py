"""The blocks a Transformer is stacked from: feed-forward net, encoder layer, decoder layer.

Each sub-layer (attention, feed-forward) is wrapped in a residual connection and a LayerNorm,
in one of two orders:
- post-LN (the 2017 paper):  x = LayerNorm(x + Sublayer(x))
- pre-LN  (GPT-2 onwards):   x = x + Sublayer(LayerNorm(x))   - trains more stably when deep.
`norm_first=True` picks pre-LN, as in `torch.nn.TransformerEncoderLayer`, which these layers
equal numerically (tests/test_layers.py).

A GPT block is an `EncoderLayer` run with a causal mask: "decoder-only" models have no
cross-attention, so their blocks are encoder layers that may not look ahead.

Used by the models; notebook 04 builds them up.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention
from .config import TransformerConfig

_ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's "gelu_new"
}


class FeedForward(nn.Module):
    """FFN(x) = W2 · act(W1 x + b1) + b2, applied to every position independently. (B, T, C) -> (B, T, C)"""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation="gelu", bias=True):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff, bias=bias)
        self.linear2 = nn.Linear(d_ff, d_model, bias=bias)
        self.activation = activation
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.linear2(self.dropout(_ACTIVATIONS[self.activation](self.linear1(x))))

    def extra_repr(self):
        return f"activation={self.activation!r}"


def _attention(cfg: TransformerConfig) -> MultiHeadAttention:
    return MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.dropout, cfg.bias, cfg.attn_impl)


def _norm(cfg: TransformerConfig) -> nn.LayerNorm:
    return nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, bias=cfg.bias)


def _ffn(cfg: TransformerConfig) -> FeedForward:
    return FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout, cfg.activation, cfg.bias)


class EncoderLayer(nn.Module):
    """Self-attention then feed-forward, each with a residual connection and LayerNorm."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm_first = cfg.norm_first
        self.self_attn, self.ffn = _attention(cfg), _ffn(cfg)
        self.norm1, self.norm2 = _norm(cfg), _norm(cfg)
        self.dropout1, self.dropout2 = nn.Dropout(cfg.dropout), nn.Dropout(cfg.dropout)

    def forward(self, x, mask=None, *, cache=None, rotary=None, need_weights=False, is_causal=False):
        """x: (B, T, C) -> ((B, T, C), self-attention weights (B, H, T, Tk) or None)."""

        def attend(h):
            out, w = self.self_attn(
                h, mask=mask, cache=cache, rotary=rotary, need_weights=need_weights, is_causal=is_causal
            )
            return self.dropout1(out), w

        if self.norm_first:
            out, weights = attend(self.norm1(x))
            x = x + out
            x = x + self.dropout2(self.ffn(self.norm2(x)))
        else:
            out, weights = attend(x)
            x = self.norm1(x + out)
            x = self.norm2(x + self.dropout2(self.ffn(x)))
        return x, weights


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention to the encoder output (memory), feed-forward."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm_first = cfg.norm_first
        self.self_attn, self.cross_attn, self.ffn = _attention(cfg), _attention(cfg), _ffn(cfg)
        self.norm1, self.norm2, self.norm3 = _norm(cfg), _norm(cfg), _norm(cfg)
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(cfg.dropout) for _ in range(3))

    def forward(
        self,
        x,
        memory,
        self_mask=None,
        memory_mask=None,
        *,
        cache=None,
        rotary=None,
        need_weights=False,
        is_causal=True,
    ):
        """x: (B, T, C) target side; memory: (B, S, C) encoder output.

        self_mask: bool, broadcastable to (B, H, T, T); memory_mask: to (B, H, T, S); True = may attend.
        cache: (self-attention KVCache, cross-attention KVCache) for incremental decoding.
        Returns (x (B, T, C), self weights (B, H, T, T) | None, cross weights (B, H, T, S) | None).
        """
        self_cache, cross_cache = cache if cache is not None else (None, None)

        def self_attend(h):
            out, w = self.self_attn(
                h,
                mask=self_mask,
                cache=self_cache,
                rotary=rotary,
                need_weights=need_weights,
                is_causal=is_causal,
            )
            return self.dropout1(out), w

        def cross_attend(h):
            out, w = self.cross_attn(
                h, memory, mask=memory_mask, cache=cross_cache, need_weights=need_weights
            )
            return self.dropout2(out), w

        if self.norm_first:
            out, self_w = self_attend(self.norm1(x))
            x = x + out
            out, cross_w = cross_attend(self.norm2(x))
            x = x + out
            x = x + self.dropout3(self.ffn(self.norm3(x)))
        else:
            out, self_w = self_attend(x)
            x = self.norm1(x + out)
            out, cross_w = cross_attend(x)
            x = self.norm2(x + out)
            x = self.norm3(x + self.dropout3(self.ffn(x)))
        return x, self_w, cross_w
