"""Positions as pictures: the sinusoidal table, how alike position vectors are, and RoPE's rotation.

Each draws what `positional.py` computes, so the picture and the model use the same numbers.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..errors import ShapeError
from ..positional import RotaryEmbedding, apply_rotary, sinusoidal_table
from ._common import new_axes


def plot_sinusoidal(max_len, d_model, ax=None):
    """The sinusoidal encoding table (max_len, d_model) as a heat map: positions down, dimensions across.

    Left columns oscillate fast (short wavelengths), right columns slowly: every position gets a
    distinct pattern. Returns the axes; the table is `ax.images[0].get_array()`.
    """
    table = sinusoidal_table(max_len, d_model).numpy()  # (T, C)
    ax = ax if ax is not None else new_axes((6, 4))
    image = ax.imshow(table, cmap="RdBu", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    ax.figure.colorbar(image, ax=ax)
    ax.set_xlabel("dimension (even: sin, odd: cos)")
    ax.set_ylabel("position")
    ax.set_title(f"sinusoidal encoding, d_model={d_model}")
    return ax


def plot_position_similarity(table, ax=None, cosine=False):
    """How alike the position vectors are: the (T, T) matrix of dot products table @ tableᵀ.

    table: (T, C) position vectors, e.g. `mt.sinusoidal_table(64, 32)` or a learned embedding's
    weight. cosine=True divides by the norms. Neighbouring positions come out most similar.
    """
    x = torch.as_tensor(table).detach().float().cpu()
    if x.dim() != 2:
        raise ShapeError(f"table must have shape (T, C), one vector per position, got {tuple(x.shape)}")
    if cosine:
        x = torch.nn.functional.normalize(x, dim=-1)
    similarity = (x @ x.T).numpy()  # (T, T)
    ax = ax if ax is not None else new_axes((5, 4))
    image = ax.imshow(similarity, cmap="viridis", interpolation="nearest")
    ax.figure.colorbar(image, ax=ax)
    ax.set_xlabel("position j")
    ax.set_ylabel("position i")
    ax.set_title("cosine similarity" if cosine else "dot product  p_i · p_j")
    return ax


def plot_rope_rotation(positions=8, d_head=8, pair=0, base=10000.0, vector=(1.0, 0.0), ax=None):
    """RoPE as a picture: one 2-D pair of query dimensions, rotated by the package's `apply_rotary`.

    Pair j (dims j and j + D/2) turns by θ_j = base^(-2j/D) radians per position; the arrow for
    position p points at angle p·θ_j from `vector`, with unchanged length. Returns the axes; arrow
    p is the annotation `ax.texts[2 * p]` (its `.xy` is the tip), its label `ax.texts[2 * p + 1]`.
    """
    if not 0 <= pair < d_head // 2:
        raise ValueError(f"pair must be in [0, {d_head // 2 - 1}] for d_head={d_head}, got {pair}")
    rope = RotaryEmbedding(d_head, positions, base)
    cos, sin = rope(torch.arange(positions)[None])  # (1, 1, T, D) each
    x = torch.zeros(1, 1, positions, d_head)  # (B, H, T, D): the same vector at every position
    x[..., pair], x[..., pair + d_head // 2] = vector[0], vector[1]
    rotated = apply_rotary(x, cos, sin)[0, 0][:, [pair, pair + d_head // 2]].numpy()  # (T, 2)
    ax = ax if ax is not None else new_axes((4.5, 4.5))
    radius = math.hypot(*vector)
    ax.add_patch(plt.Circle((0, 0), radius, fill=False, color="0.8", linestyle="--"))
    colors = plt.get_cmap("viridis")(np.linspace(0, 1, positions))
    for p, (tip, color) in enumerate(zip(rotated, colors)):
        ax.annotate("", xy=tip, xytext=(0, 0), arrowprops=dict(arrowstyle="->", color=color, lw=1.5))
        ax.text(*(1.12 * tip), f"p={p}", fontsize=8, ha="center", va="center", color=color)
    lim = 1.25 * radius
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
    ax.set_xlabel(f"dim {pair}")
    ax.set_ylabel(f"dim {pair + d_head // 2}")
    theta = base ** (-2 * pair / d_head)
    ax.set_title(f"RoPE pair {pair}: θ = {theta:.3g} rad per position")
    return ax
