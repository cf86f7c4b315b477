"""The blocks a Transformer is stacked from: feed-forward net, encoder layer, decoder layer.

Each sub-layer (attention, feed-forward) is wrapped in a residual connection and a LayerNorm,
in one of two orders, written once in `residual`:
- post-LN (the 2017 paper):  x = LayerNorm(x + Sublayer(x))
- pre-LN  (GPT-2 onwards):   x = x + Sublayer(LayerNorm(x))   - trains more stably when deep.
`norm_first=True` picks pre-LN, as in `torch.nn.TransformerEncoderLayer`, which these layers
equal numerically (tests/test_layers.py).

A GPT block is an `EncoderLayer` run with a causal mask: "decoder-only" models have no
cross-attention, so their blocks are encoder layers that may not look ahead. `step` methods are
the same computation for one new token during decoding, without module calls (see
`MultiHeadAttention.step`); tests/test_gpt_step.py keeps them equal to `forward`.

Used by the models; notebook 05 builds them up.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from . import compiled_block, matvec
from .attention import MultiHeadAttention
from .config import TransformerConfig

ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's "gelu_new"
}


def residual(x, sublayer, norm, norm_first: bool, dropout=None):
    """One sub-layer with its residual connection and LayerNorm; sublayer(h) returns (out, extra).

    Returns (new x, extra): extra is what the sub-layer reports besides its output (attention
    weights), or None.
    """
    out, extra = sublayer(norm(x) if norm_first else x)
    if dropout is not None:
        out = dropout(out)
    return (x + out, extra) if norm_first else (norm(x + out), extra)


def make_norm(cfg: TransformerConfig) -> nn.LayerNorm:
    """The one LayerNorm every layer and model uses."""
    return nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, bias=cfg.bias)


def layer_norm_function(norm: nn.LayerNorm):
    """`norm` as a plain function of x, for the decoding steps: the same `torch.layer_norm` call."""
    return partial(torch.layer_norm, normalized_shape=norm.normalized_shape, weight=norm.weight,
                   bias=norm.bias, eps=norm.eps)


class FeedForward(nn.Module):
    """FFN(x) = W2 · act(W1 x + b1) + b2, applied to every position independently. (B, T, C) -> (B, T, C)"""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0, activation="gelu", bias=True):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff, bias=bias)
        self.linear2 = nn.Linear(d_ff, d_model, bias=bias)
        self.activation = activation
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.linear2(self.dropout(ACTIVATIONS[self.activation](self.linear1(x))))

    def step(self, x, cache):
        """`forward` without module calls, for decoding (no dropout: eval mode)."""
        w1, b1, w2, b2 = cache.step_weights(self)
        return matvec.linear(ACTIVATIONS[self.activation](matvec.linear(x, w1, b1)), w2, b2)

    def step_weights(self):
        first, second = self.linear1, self.linear2
        return *matvec.for_decoding(first.weight, first.bias), *matvec.for_decoding(second.weight, second.bias)

    def extra_repr(self):
        return f"activation={self.activation!r}"


def _attention(cfg: TransformerConfig) -> MultiHeadAttention:
    return MultiHeadAttention(cfg.d_model, cfg.n_heads, cfg.dropout, cfg.bias, cfg.attn_impl)


def _ffn(cfg: TransformerConfig) -> FeedForward:
    return FeedForward(cfg.d_model, cfg.d_ff, cfg.dropout, cfg.activation, cfg.bias)


def _no_extra(fn):
    return lambda h: (fn(h), None)


class EncoderLayer(nn.Module):
    """Self-attention then feed-forward, each with a residual connection and LayerNorm."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm_first = cfg.norm_first
        self.self_attn, self.ffn = _attention(cfg), _ffn(cfg)
        self.norm1, self.norm2 = make_norm(cfg), make_norm(cfg)
        self.dropout1, self.dropout2 = nn.Dropout(cfg.dropout), nn.Dropout(cfg.dropout)

    def forward(self, x, mask=None, *, cache=None, rotary=None, need_weights=False, is_causal=False):
        """x: (B, T, C) -> ((B, T, C), self-attention weights (B, H, T, Tk) or None)."""
        attend = lambda h: self.self_attn(
            h, mask=mask, cache=cache, rotary=rotary, need_weights=need_weights, is_causal=is_causal
        )
        x, weights = residual(x, attend, self.norm1, self.norm_first, self.dropout1)
        x, _ = residual(x, _no_extra(self.ffn), self.norm2, self.norm_first, self.dropout2)
        return x, weights

    def step(self, x, cache, mask=None, rotary=None):
        """`forward` for one new position of a causal stack with a KV cache: (B, 1, C) -> (B, 1, C)."""
        weights = cache.step_weights(self)
        if isinstance(weights, compiled_block.Block):
            return compiled_block.step(x, weights, cache, mask, rotary)
        norm1, norm2 = weights
        x, _ = residual(x, lambda h: (self.self_attn.step(h, cache, mask, rotary), None), norm1, self.norm_first)
        x, _ = residual(x, lambda h: (self.ffn.step(h, cache), None), norm2, self.norm_first)
        return x

    def step_weights(self):
        """The two LayerNorms as plain functions (a module call costs more than the norm here); for
        bfloat16 within `matvec.compiled()`, everything the compiled step reads (compiled_block.py)."""
        if matvec.compiling(self.ffn.linear1.weight):
            return self.compiled_block()
        return layer_norm_function(self.norm1), layer_norm_function(self.norm2)

    def compiled_block(self) -> compiled_block.Block:
        """The block's weights, detached (torch.compile would fix a parameter's shape), and settings."""
        pair = lambda m: (m.weight.detach(), None if m.bias is None else m.bias.detach())
        ffn = self.ffn
        return compiled_block.Block(
            norm1=pair(self.norm1), qkv=self.self_attn.stacked_qkv(), out=pair(self.self_attn.w_o),
            norm2=pair(self.norm2), ff1=pair(ffn.linear1), ff2=pair(ffn.linear2), n_heads=self.self_attn.n_heads,
            norm_first=self.norm_first, activation=ffn.activation, eps=self.norm1.eps,
        )


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention to the encoder output (memory), feed-forward."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.norm_first = cfg.norm_first
        self.self_attn, self.cross_attn, self.ffn = _attention(cfg), _attention(cfg), _ffn(cfg)
        self.norm1, self.norm2, self.norm3 = make_norm(cfg), make_norm(cfg), make_norm(cfg)
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(cfg.dropout) for _ in range(3))

    def forward(self, x, memory, self_mask=None, memory_mask=None, *, cache=None, rotary=None,
                need_weights=False, is_causal=True):
        """x: (B, T, C) target side; memory: (B, S, C) encoder output.

        self_mask: bool, broadcastable to (B, H, T, T); memory_mask: to (B, H, T, S); True = may attend.
        cache: (self-attention KVCache, cross-attention KVCache) for incremental decoding.
        Returns (x (B, T, C), self weights (B, H, T, T) | None, cross weights (B, H, T, S) | None).
        """
        self_cache, cross_cache = cache if cache is not None else (None, None)
        self_attend = lambda h: self.self_attn(
            h, mask=self_mask, cache=self_cache, rotary=rotary, need_weights=need_weights, is_causal=is_causal
        )
        cross_attend = lambda h: self.cross_attn(
            h, memory, mask=memory_mask, cache=cross_cache, need_weights=need_weights
        )
        x, self_weights = residual(x, self_attend, self.norm1, self.norm_first, self.dropout1)
        x, cross_weights = residual(x, cross_attend, self.norm2, self.norm_first, self.dropout2)
        x, _ = residual(x, _no_extra(self.ffn), self.norm3, self.norm_first, self.dropout3)
        return x, self_weights, cross_weights
