"""What every picture shares: the colours, token labels, new axes, PNG bytes and input checks.

Importing it gives matplotlib a CJK fallback font when one is installed (fonts.py), so Chinese
tokens are drawn as characters, not boxes.
"""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..errors import ShapeError
from .fonts import use_cjk_font, warn_if_cjk_cannot_be_drawn

KEPT_COLOR = "tab:blue"
REMOVED_COLOR = "0.6"  # a grey: tokens a filter removed, beams that were pruned
CHOSEN_COLOR = "tab:red"
_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "⏎"}
use_cjk_font()


def show_token(token: str) -> str:
    """A token's text with whitespace made visible, for axis labels: ' ' -> '␣', '\\n' -> '↵'."""
    warn_if_cjk_cannot_be_drawn(token)  # every token label passes here: the one place to notice Chinese
    return "".join(_VISIBLE.get(ch, ch) for ch in token) if token else "∅"


def token_label(tokenizer, token_id: int) -> str:
    """The visible text of one token id (a BPE piece that is half a character falls back to its name)."""
    text = tokenizer.decode([token_id])
    return show_token(tokenizer.id_to_token(token_id) if "\ufffd" in text else text)


def figure_png(fig, dpi=None) -> bytes:
    """The figure as PNG bytes (for an ipywidgets.Image or IPython.display.Image)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})  # fast over small
    return buffer.getvalue()


def new_axes(figsize):
    """A new pyplot figure with one axes (constrained layout keeps the labels inside)."""
    use_cjk_font()  # again, in case a style or rcdefaults() reset the font list since the import
    return plt.subplots(figsize=figsize, layout="constrained")[1]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where display() reaches a front end)."""
    try:
        from IPython import get_ipython  # optional: IPython comes with Jupyter, not with the package
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def as_array(x, name, ndim, shape_doc, hint=""):
    """A tensor, array or nested list as a NumPy array with `ndim` axes (float, or bool for a mask)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy() if x.dtype != torch.bool else x.cpu().numpy()
    x = np.asarray(x)
    if x.ndim != ndim:
        raise ShapeError(f"{name} must have shape {shape_doc}, got {x.shape}" + (f"; {hint}" if hint else ""))
    return x


def check_labels(tokens, n, name) -> list[str]:
    """n labels as strings; a string gives one label per character."""
    tokens = list(tokens)
    if len(tokens) != n:
        raise ShapeError(f"{name} has {len(tokens)} labels, but the data has {n} positions")
    return [str(t) for t in tokens]


def set_tick_labels(ax, q_tokens, k_tokens, shape):
    """Label the keys along x and the queries along y of a (Tq, Tk) image; None leaves an axis as it is."""
    size = max(5, min(10, 220 / max(max(shape), 1)))  # smaller print for longer sequences
    if k_tokens is not None:
        labels = [show_token(t) for t in check_labels(k_tokens, shape[1], "k_tokens")]
        ax.set_xticks(range(shape[1]), labels, rotation=90, fontsize=size)
    if q_tokens is not None:
        labels = [show_token(t) for t in check_labels(q_tokens, shape[0], "q_tokens")]
        ax.set_yticks(range(shape[0]), labels, fontsize=size)
