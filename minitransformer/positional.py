"""Positional encodings: how a Transformer knows the order of its tokens.

Attention by itself is permutation-equivariant: shuffle the tokens and the outputs shuffle the
same way. Order enters only through positional information:
- sinusoidal (the 2017 paper, section 3.5), added to the token embeddings:
      PE(pos, 2i)   = sin(pos / 10000^(2i / d_model))
      PE(pos, 2i+1) = cos(pos / 10000^(2i / d_model))
- learned: one trained vector per position (GPT-2, BERT);
- rotary (RoPE, Su et al. 2021): rotate each pair of query/key dimensions by an angle
  proportional to the position, so that q·k depends only on the *relative* distance.

Used by the models and by notebook 03.
"""

from __future__ import annotations

import torch
from torch import nn


def sinusoidal_table(max_len: int, d_model: int) -> torch.Tensor:
    """(max_len, d_model): even columns sin, odd columns cos, frequencies falling geometrically."""
    position = torch.arange(max_len, dtype=torch.float64)[:, None]  # (T, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # 2i = 0, 2, 4, ...
    angle = position / 10000.0 ** (two_i / d_model)  # (T, ceil(C / 2))
    table = torch.zeros(max_len, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])  # odd d_model: one fewer cos column
    return table.float()


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sin/cos vectors, looked up by position. Nothing to train, nothing saved in checkpoints."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.register_buffer("table", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, C)
        return self.table[positions]


class LearnedPositionalEmbedding(nn.Embedding):
    """One trainable vector per position, like a second vocabulary of positions."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__(max_len, d_model)


class RotaryEmbedding(nn.Module):
    """cos/sin tables for rotary position embedding (RoPE), in the "rotate half" layout.

    Dimension j of the first half is paired with dimension j + D/2 (GPT-NeoX and Llama layout;
    the paper pairs neighbours 2j, 2j+1, which is the same rotation with the dimensions permuted).
    Pair j turns by angle pos * base^(-2j / D).
    """

    def __init__(self, d_head: int, max_len: int, base: float = 10000.0):
        super().__init__()
        inv_freq = base ** (-torch.arange(0, d_head, 2, dtype=torch.float64) / d_head)  # (D/2,)
        angle = torch.arange(max_len, dtype=torch.float64)[:, None] * inv_freq  # (T, D/2)
        angle = torch.cat([angle, angle], dim=-1)  # (T, D): both halves of a pair share an angle
        self.register_buffer("cos", angle.cos().float(), persistent=False)
        self.register_buffer("sin", angle.sin().float(), persistent=False)

    def forward(self, positions: torch.Tensor):
        """positions (B, T) -> (cos, sin), each (B, 1, T, D), broadcasting over heads."""
        return self.cos[positions][:, None], self.sin[positions][:, None]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last axis: a 90° turn of every pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair of x's dims: x (B, H, T, D), cos/sin (B, 1, T, D) -> (B, H, T, D)."""
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)
