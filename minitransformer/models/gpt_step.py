"""GPT's decoding step for one new token, as plain tensor functions: the fast path of generation.

While generating with a KV cache, the model runs once per new token on a single position. Each
layer then does a few matrix-vector products that take microseconds, and on a CPU the Python
around them (about 14 module calls per layer, einops pattern parsing, input checks) took longer
than the arithmetic: see benchmarks/results/profile.txt. `GPTStep` computes exactly what
`GPT.forward` computes for that one position, but with

- one q/k/v product per layer (the three weight matrices stacked once, when the step is built),
- `view`/`transpose` instead of einops patterns, and no module calls inside the layer loop,
- no dropout (generation runs in eval mode) and no input checks (the ids are the model's own).

`GPT.forward` stays the readable reference; tests/test_generation.py keeps the two equal for every
configuration (pre-/post-LN, learned/sinusoidal/RoPE positions, bias or not, padding masks).
A step is built at the start of a `generate` call and used only inside it: it holds a copy of the
stacked q/k/v weights, which training would make stale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..layers import _ACTIVATIONS, EncoderLayer
from ..positional import apply_rotary
from .base import Cache


class GPTStep:
    """step(ids (B, 1), positions (B, 1) or (1, 1), mask (B, L) or None, cache) -> logits (B, V).

    mask covers all L = cached + 1 positions (1 = real token, 0 = padding); the cache must already
    hold the earlier tokens (the prompt goes through `GPT.forward`, which fills it).
    """

    def __init__(self, model):
        self.model = model
        with torch.no_grad():
            self.layers = [_LayerStep(block, model.config.n_heads) for block in model.blocks]

    def __call__(self, ids, positions, mask, cache: Cache):  # generate calls it in inference mode
        x, rotary = self.model.embed(ids, positions)  # (B, 1, C)
        attn_mask = None if mask is None else mask.bool()[:, None, None, :]  # (B, 1, 1, L)
        for layer, kv in zip(self.layers, cache.layers):
            x = layer(x, kv, attn_mask, rotary)
        if self.model.norm_f is not None:
            x = self.model.norm_f(x)
        return self.model.lm_head(x[:, -1])  # (B, V)


class _LayerStep:
    """One EncoderLayer (causal self-attention + FFN) for the newest position."""

    def __init__(self, block: EncoderLayer, n_heads: int):
        attn, ffn = block.self_attn, block.ffn
        self.norm_first, self.n_heads = block.norm_first, n_heads
        self.norm1, self.norm2 = _norm_args(block.norm1), _norm_args(block.norm2)
        self.w_qkv = torch.cat([attn.w_q.weight, attn.w_k.weight, attn.w_v.weight])  # (3C, C)
        biases = (attn.w_q.bias, attn.w_k.bias, attn.w_v.bias)
        self.b_qkv = None if biases[0] is None else torch.cat(biases)  # (3C,)
        self.w_o, self.b_o = attn.w_o.weight, attn.w_o.bias
        self.w_1, self.b_1 = ffn.linear1.weight, ffn.linear1.bias
        self.w_2, self.b_2 = ffn.linear2.weight, ffn.linear2.bias
        self.activation = _ACTIVATIONS[ffn.activation]

    def __call__(self, x, kv, attn_mask, rotary):
        """x (B, 1, C) -> (B, 1, C), appending this position's keys and values to kv."""
        if self.norm_first:  # x + Sublayer(LayerNorm(x))
            x = x + self._attend(F.layer_norm(x, *self.norm1), kv, attn_mask, rotary)
            return x + self._ffn(F.layer_norm(x, *self.norm2))
        x = F.layer_norm(x + self._attend(x, kv, attn_mask, rotary), *self.norm1)  # LayerNorm(x + Sublayer(x))
        return F.layer_norm(x + self._ffn(x), *self.norm2)

    def _attend(self, x, kv, attn_mask, rotary):
        B, T, C = x.shape
        H = self.n_heads
        qkv = F.linear(x, self.w_qkv, self.b_qkv).view(B, T, 3, H, C // H)  # (B, 1, 3, H, D)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, 1, D)
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        k, v = kv.append(k, v)  # (B, H, L, D): every position so far
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, H, 1, D)
        return F.linear(out.transpose(1, 2).reshape(B, T, C), self.w_o, self.b_o)  # heads concatenated

    def _ffn(self, x):
        return F.linear(self.activation(F.linear(x, self.w_1, self.b_1)), self.w_2, self.b_2)


def _norm_args(norm):
    return norm.normalized_shape, norm.weight, norm.bias, norm.eps


def can_step(model) -> bool:
    """Whether `GPTStep` computes what the model's modules would: the fast attention path is chosen,
    and no forward hook (e.g. one recording activations) expects the modules to run."""
    if model.config.attn_impl != "fast" or model.training:
        return False
    return not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
