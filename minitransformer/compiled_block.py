"""A decoder block's one-token step as one compiled function (bfloat16, within `matvec.compiled()`).

`matvec.compiled()` first compiled each matrix product by itself: 49 compiled calls per token at
GPT-2's 124M shape, each paying about 30 µs of Python and guard checks before its loop starts, with
torch's kernels for the LayerNorms, attention and GELU in between. Here the whole block is written
as plain tensor expressions (LayerNorm, the QKV product, attention over the cache, the output
product, the feed-forward net), and torch.compile turns it into one C++ function: 12 calls per token
at 124M, whose products read each weight once. Measured at 124M on 2 cores, interleaved in one
process: 90-93 tokens/s against 73-81 with the products compiled one by one; 83-96 in the benchmark's
runs (benchmarks/results/bandwidth-threads/), where the products-one-by-one step had measured 75.

It is EncoderLayer.step's arithmetic in bfloat16 with the sums in float32 (the products, the
attention scores and the weighted values): tests/test_compiled_block.py checks its logits against
the eager bfloat16 step within bfloat16 rounding, and its greedy text against float32's.

For one row with no padding and no rotary positions (a GPT-2's greedy or sampled decoding) GPT.step
hands the whole step to native_step.c, the same arithmetic written out in C, which removes the Python
call into the compiled function and torch's loops between the products. Everything else (batches,
beams, padding, RoPE) runs here.
"""

from __future__ import annotations

import math
from functools import cache
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .kv_cache import KVCache
from .matvec import widened_linear
from .positional import apply_rotary


class Block(NamedTuple):
    """What one block's step reads: its weights as plain tensors (biases None where the model has
    none) and the settings its arithmetic depends on."""
    norm1: tuple  # (weight, bias) of the LayerNorm before (pre-LN) or after (post-LN) attention
    qkv: tuple  # (weight (3C, C): W_q, W_k, W_v stacked, bias (3C,))
    out: tuple  # (W_o (C, C), bias)
    norm2: tuple
    ff1: tuple  # (W1 (d_ff, C), b1)
    ff2: tuple  # (W2 (C, d_ff), b2)
    n_heads: int
    norm_first: bool
    activation: str  # "relu", "gelu" or "gelu_tanh"
    eps: float


def step(x, block: Block, cache: KVCache, mask=None, rotary=None):
    """One block for one new token: x (B, 1, C) -> (B, 1, C); appends its key and value to `cache`.
    mask: (B, 1, 1, L) bool over the L = cached + 1 positions, or None; rotary: (cos, sin) or None."""
    x, k, v = _compiled()(x, block, cache.keys, cache.values, mask, rotary)
    cache.append(k, v)
    return x


def block_step(x, block: Block, past_keys, past_values, mask, rotary):
    """The block as tensor expressions: -> (x (B, 1, C), new key and value (B, H, 1, D))."""
    norm1 = lambda h: F.layer_norm(h, h.shape[-1:], *block.norm1, eps=block.eps)
    norm2 = lambda h: F.layer_norm(h, h.shape[-1:], *block.norm2, eps=block.eps)
    a, k, v = attend(norm1(x) if block.norm_first else x, block, past_keys, past_values, mask, rotary)
    x = x + a if block.norm_first else norm1(x + a)
    h = norm2(x) if block.norm_first else x
    f = widened_linear(activate(block.activation, widened_linear(h, *block.ff1)), *block.ff2)
    return (x + f if block.norm_first else norm2(x + f)), k, v


def activate(name: str, h):
    return F.relu(h) if name == "relu" else F.gelu(h, approximate="tanh" if name == "gelu_tanh" else "none")


def attend(h, block: Block, past_keys, past_values, mask, rotary):
    """Self-attention of one new position over the cache and itself: h (B, 1, C) -> (out (B, 1, C), k, v).
    The new key and value join the scores without being copied into the cache first."""
    B, _, C = h.shape
    H = block.n_heads
    q, k, v = widened_linear(h, *block.qkv).view(B, 1, 3, H, C // H).permute(2, 0, 3, 1, 4)  # each (B, H, 1, D)
    if rotary is not None:
        q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
    q32 = q.float() / math.sqrt(C // H)
    scores = torch.cat([(q32 * past_keys.float()).sum(-1), (q32 * k.float()).sum(-1)], dim=-1)  # (B, H, L)
    if mask is not None:
        scores = scores.masked_fill(~mask[:, :, 0], float("-inf"))  # mask (B, 1, 1, L) -> (B, 1, L)
    p = scores.softmax(-1)[..., None]  # (B, H, L, 1)
    out = (p[:, :, :-1] * past_values.float()).sum(-2) + p[:, :, -1] * v[:, :, 0].float()  # (B, H, D)
    return widened_linear(out.to(h.dtype).reshape(B, 1, C), *block.out), k, v


@cache
def _compiled():
    # realize_opcount_threshold 0: every intermediate is computed once into a buffer. Left to its
    # default, the compiler fused each LayerNorm into the next product's loop and recomputed it for
    # every weight row: 70 tokens/s at 124M instead of 85.
    return torch.compile(block_step, dynamic=True, options={"realize_opcount_threshold": 0})
