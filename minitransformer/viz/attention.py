"""Attention as pictures: one map, every head of every layer, cross-attention, masks, and bertviz's input.

Used by notebooks 02 (masks), 04 (the heads of a trained model), 08 (masked LM), 09 (seq2seq) and 11 (bertviz),
and by the attention explorer widget.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..checks import is_int
from ..errors import ShapeError, describe
from ._common import as_array, check_labels, new_axes, set_tick_labels, show_token


def plot_attention(weights, q_tokens, k_tokens=None, ax=None, title=None, vmax=None, cmap="viridis"):
    """Heatmap of one attention matrix: row i = how query token i spreads its attention over the keys.

    weights: (Tq, Tk), e.g. `attentions[layer][0, head]`; each row sums to 1 (0 for a blind query).
    q_tokens, k_tokens: Tq and Tk labels (a string counts one label per character); k_tokens
    defaults to q_tokens (self-attention). Returns the axes; the image is `ax.images[0]`.
    """
    w = as_array(weights, "weights", ndim=2, shape_doc="(Tq, Tk)", hint="for model output take [0, head]")
    q_tokens = check_labels(q_tokens, w.shape[0], "q_tokens")
    k_tokens = q_tokens if k_tokens is None else check_labels(k_tokens, w.shape[1], "k_tokens")
    if len(k_tokens) != w.shape[1]:  # k_tokens defaulted to the Tq query labels
        raise ShapeError(
            f"weights has {w.shape[1]} keys but only {len(k_tokens)} query labels were given: "
            "pass k_tokens= (the key labels) when Tq != Tk"
        )
    ax = ax if ax is not None else new_axes((4 + 0.12 * w.shape[1], 3.5 + 0.12 * w.shape[0]))
    ax.imshow(w, cmap=cmap, vmin=0.0, vmax=vmax, aspect="auto", interpolation="nearest")
    set_tick_labels(ax, q_tokens, k_tokens, w.shape)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if title:
        ax.set_title(title)
    return ax


def plot_attention_grid(attentions, tokens, batch_index=0, fig=None, layers=None):
    """Every head of the chosen layers: a grid of one row per layer x one column per head, one colour bar.

    attentions: a list with one (B, H, T, T) tensor per layer, as returned by
    `model(ids, return_attention=True)`; tokens: the T labels. layers: which layers to draw, as
    indices into `attentions` (e.g. `[0, -1]`, the first and the last); None draws them all. Titles
    give the model's layer index, whichever rows are drawn. All panels share the colour scale 0..1,
    so one colour bar reads every panel. Returns the figure.
    """
    weights = _check_attentions(attentions)
    chosen = _layer_indices(layers, len(weights))
    n_rows, n_heads, T = len(chosen), weights[0].shape[1], weights[0].shape[-1]
    tokens = check_labels(tokens, T, "tokens")
    side = min(4.0, max(2.2, 0.14 * T))  # inches per panel: room for T labels, up to a point
    label_size = max(5, min(8, 62 * side / T))  # about one label height per row of the panel
    if fig is None:
        fig = plt.figure(figsize=(side * n_heads + 1.4, side * n_rows + 0.5), layout="constrained")
    fig.clear()
    grid = fig.add_gridspec(n_rows, n_heads + 1, width_ratios=[1] * n_heads + [0.06])  # last column: the bar
    for r, layer in enumerate(chosen):
        for head in range(n_heads):
            ax = fig.add_subplot(grid[r, head])
            plot_attention(weights[layer][batch_index, head], tokens, ax=ax, vmax=1.0)
            ax.set_title(f"layer {layer}, head {head}", fontsize=9)
            ax.tick_params(labelsize=label_size)
            ax.set_xlabel("")
            ax.set_ylabel("")
            if r < n_rows - 1:  # labels on the outer edge only
                ax.set_xticklabels([])
            if head > 0:
                ax.set_yticklabels([])
    # the bar sits in a grid cell of its own, so constrained layout still works if a caller adds another
    fig.colorbar(ax.images[0], cax=fig.add_subplot(grid[:, -1]), label="attention weight")
    fig.supxlabel("key (attended to)")
    fig.supylabel("query (attending)")
    return fig


def _layer_indices(layers, n_layers):
    """`layers=` as model layer indices (negative ones count from the end); None -> every layer."""
    if layers is None:
        return list(range(n_layers))
    if isinstance(layers, (int, str, torch.Tensor)) or not hasattr(layers, "__iter__"):
        raise TypeError(f"layers must be a list of layer indices such as [0, 2], got {describe(layers)}")
    chosen = list(layers)
    for layer in chosen:
        if not (is_int(layer) and -n_layers <= layer < n_layers):
            raise ValueError(
                f"layers must hold integers in [{-n_layers}, {n_layers - 1}] (the attentions have "
                f"{n_layers} layers), got {describe(layer)} in layers={describe(layers)}"
            )
    if not chosen:
        raise ValueError("layers must name at least one layer, got an empty list (None draws every layer)")
    return [layer % n_layers for layer in chosen]


def plot_cross_attention(cross, src_tokens, tgt_tokens, ax=None, title=None):
    """Encoder-decoder attention: which source tokens each target token looks at.

    cross: (T, S), e.g. `attentions["cross"][layer][0, head]` from a Seq2SeqTransformer;
    src_tokens: S labels (the keys), tgt_tokens: T labels (the queries). Returns the axes.
    """
    ax = plot_attention(cross, tgt_tokens, src_tokens, ax=ax, title=title)
    ax.set_xlabel("source token (key)")
    ax.set_ylabel("target token (query)")
    return ax


def to_bertviz(attentions, tokens, target_tokens=None, batch_index=0):
    """The keyword arguments of `bertviz.head_view` / `bertviz.model_view` (bertviz is optional).

    GPT or MaskedLM: attentions is a list of (B, H, T, T) tensors, tokens the T labels ->
        {"attention": tuple of (1, H, T, T) tensors, one per layer, "tokens": [str]}
    Seq2SeqTransformer: attentions is the dict {"encoder", "decoder", "cross"}, tokens the source
    labels and target_tokens the target labels -> {"encoder_attention", "decoder_attention",
    "cross_attention", "encoder_tokens", "decoder_tokens"}.
    Use: `from bertviz import head_view; head_view(**to_bertviz(attentions, tokens))`. Spaces and
    newlines in the labels are shown as '␣' and '↵'.
    """

    def one_item(layers):  # bertviz shows one sequence: (1, H, Tq, Tk) float tensors on the CPU
        return tuple(
            torch.as_tensor(w)[batch_index : batch_index + 1].detach().float().cpu()
            for w in _check_attentions(layers, square=False)
        )

    if isinstance(attentions, dict):
        if target_tokens is None:
            raise ValueError("seq2seq attentions need target_tokens= (the decoder's labels)")
        out = {f"{part}_attention": one_item(attentions[part]) for part in ("encoder", "decoder", "cross")}
        out["encoder_tokens"] = _visible(tokens, out["encoder_attention"][0].shape[-1], "tokens")
        out["decoder_tokens"] = _visible(target_tokens, out["decoder_attention"][0].shape[-1], "target_tokens")
        return out
    attention = one_item(attentions)
    return {"attention": attention, "tokens": _visible(tokens, attention[0].shape[-1], "tokens")}


def _visible(tokens, n, name):
    """Labels with whitespace shown (bertviz would draw a space or a newline as nothing)."""
    return [show_token(t) for t in check_labels(tokens, n, name)]


def plot_mask(mask, ax=None, title=None, q_tokens=None, k_tokens=None):
    """A bool mask as an image: a filled cell (query i, key j) = True = i may attend to j.

    mask: (Tq, Tk), e.g. `mt.causal_mask(5)`; size-1 leading axes are dropped, so a padding mask
    `mt.padding_mask(m)[b]` of shape (1, 1, Tk) shows as one row. A (B, T) attention_mask
    (1 = real token) shows each sequence as a row. Returns the axes.
    """
    m = torch.as_tensor(mask)
    while m.dim() > 2 and m.shape[0] == 1:
        m = m[0]
    if m.dim() == 1:
        m = m[None]
    m = as_array(m, "mask", ndim=2, shape_doc="(Tq, Tk)", hint="pick one item and head, e.g. mask[b, h]")
    ax = ax if ax is not None else new_axes((max(3, 1 + 0.4 * m.shape[1]), max(2, 0.8 + 0.4 * m.shape[0])))
    ax.imshow(m.astype(float), cmap="Blues", vmin=0.0, vmax=1.25, interpolation="nearest")
    ax.set_xticks(np.arange(-0.5, m.shape[1]), minor=True)  # thin grid lines between the cells
    ax.set_yticks(np.arange(-0.5, m.shape[0]), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    set_tick_labels(ax, q_tokens, k_tokens, m.shape)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_title(title or "mask (filled = may attend)")
    return ax


def _check_attentions(attentions, square=True):
    """A list of (B, H, Tq, Tk) tensors, one per layer -> the same list, checked."""
    if isinstance(attentions, torch.Tensor) or not attentions:
        raise TypeError(
            f"attentions must be a list with one (B, H, T, T) tensor per layer, got {describe(attentions)}"
        )
    for i, w in enumerate(attentions):
        if w is None:
            raise ValueError(f"attentions[{i}] is None: run the model with return_attention=True")
        if w.dim() != 4 or (square and w.shape[-1] != w.shape[-2]):
            raise ShapeError(f"attentions[{i}] must have shape (B, H, T, T), got {tuple(w.shape)}")
    return list(attentions)


def plot_generation_attention(output, layer=-1, head=0, batch_index=0, tokens=None, ax=None):
    """Where each generated token looked: row s = the attention weights of the step that chose new token s.

    output: `generate(..., return_dict_in_generate=True, output_attentions=True)`. The step that
    chose token s reads the prompt and the s tokens before it, so row s covers T + s positions and the
    rest of the row is blank. tokens: labels for the T + new - 1 positions read (optional). Returns the axes.
    """
    steps = getattr(output, "attentions", None)
    if not steps:
        raise ValueError("output has no attentions: call generate(..., return_dict_in_generate=True, "
                         "output_attentions=True) for a decoder-only model")
    rows = [step[layer][batch_index, head, -1].float().cpu().numpy() for step in steps]  # (T + s,) each
    grid = np.ma.masked_all((len(rows), len(rows[-1])))
    for s, row in enumerate(rows):
        grid[s, : len(row)] = row
    ax = ax if ax is not None else new_axes((4 + 0.12 * grid.shape[1], 3 + 0.15 * grid.shape[0]))
    image = ax.imshow(grid, cmap="viridis", vmin=0.0, aspect="auto", interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, label="attention weight")
    if tokens is not None:
        labels = [show_token(t) for t in check_labels(tokens, grid.shape[1], "tokens")]
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_xlabel("position read (prompt, then the tokens generated so far)")
    ax.set_ylabel("new token")
    ax.set_title(f"attention while generating: layer {layer}, head {head}")
    return ax
