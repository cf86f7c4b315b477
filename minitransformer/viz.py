"""Pictures of what a Transformer computes: attention maps, masks, positions, next-token distributions.

Every function draws with matplotlib and returns what it drew on: an `ax=` (or `fig=` for grids)
can be passed in, otherwise a new figure is made. Tensors may be torch tensors, NumPy arrays or
nested lists. Letters as everywhere in the package: B batch, H heads, L layers, T/Tq/Tk sequence
lengths, S source length, C = d_model, D = d_head, V vocabulary.

    attention   plot_attention, plot_attention_grid, plot_cross_attention, to_bertviz
    masks       plot_mask
    positions   plot_sinusoidal, plot_position_similarity, plot_rope_rotation
    decoding    plot_next_token_stages (logits.logits_stages) and next_token_stages_html,
                plot_beam_tree (beam_search trace)
    training    plot_history, LivePlot (a Trainer callback)
    embeddings  plot_embeddings_pca

Used by widgets.py and the notebooks (10_decoding_explorer and the topic notebooks).
"""

from __future__ import annotations

import html
import io
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import to_hex

from .errors import ShapeError, describe
from .positional import RotaryEmbedding, apply_rotary, sinusoidal_table

KEPT_COLOR = "tab:blue"
REMOVED_COLOR = "0.6"  # a grey: tokens a filter removed, beams that were pruned
CHOSEN_COLOR = "tab:red"
_VISIBLE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "⏎"}


def show_token(token: str) -> str:
    """A token's text with whitespace made visible, for axis labels: ' ' -> '␣', '\\n' -> '↵'."""
    return "".join(_VISIBLE.get(ch, ch) for ch in token) if token else "∅"


def token_label(tokenizer, token_id: int) -> str:
    """The visible text of one token id (a BPE piece that is half a character falls back to its name)."""
    text = tokenizer.decode([token_id])
    return show_token(tokenizer.id_to_token(token_id) if "\ufffd" in text else text)


# ----------------------------------------------------------------------------- attention


def plot_attention(weights, q_tokens, k_tokens=None, ax=None, title=None, vmax=None, cmap="viridis"):
    """Heatmap of one attention matrix: row i = how query token i spreads its attention over the keys.

    weights: (Tq, Tk), e.g. `attentions[layer][0, head]`; each row sums to 1 (0 for a blind query).
    q_tokens, k_tokens: Tq and Tk labels (a string counts one label per character); k_tokens
    defaults to q_tokens (self-attention). Returns the axes; the image is `ax.images[0]`.
    """
    w = _as_array(weights, "weights", ndim=2, shape_doc="(Tq, Tk)", hint="for model output take [0, head]")
    q_tokens = _labels(q_tokens, w.shape[0], "q_tokens")
    k_tokens = q_tokens if k_tokens is None else _labels(k_tokens, w.shape[1], "k_tokens")
    if len(k_tokens) != w.shape[1]:  # k_tokens defaulted to the Tq query labels
        raise ShapeError(
            f"weights has {w.shape[1]} keys but only {len(k_tokens)} query labels were given: "
            "pass k_tokens= (the key labels) when Tq != Tk"
        )
    ax = ax if ax is not None else _new_axes((4 + 0.12 * w.shape[1], 3.5 + 0.12 * w.shape[0]))
    ax.imshow(w, cmap=cmap, vmin=0.0, vmax=vmax, aspect="auto", interpolation="nearest")
    size = _label_size(max(w.shape))
    ax.set_xticks(range(w.shape[1]), [show_token(t) for t in k_tokens], rotation=90, fontsize=size)
    ax.set_yticks(range(w.shape[0]), [show_token(t) for t in q_tokens], fontsize=size)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if title:
        ax.set_title(title)
    return ax


def plot_attention_grid(attentions, tokens, batch_index=0, fig=None):
    """Every head of every layer: a grid of L rows x H columns of heatmaps.

    attentions: a list with one (B, H, T, T) tensor per layer, as returned by
    `model(ids, return_attention=True)`; tokens: the T labels. Returns the figure.
    """
    layers = _check_attentions(attentions)
    n_layers, n_heads = len(layers), layers[0].shape[1]
    T = layers[0].shape[-1]
    tokens = _labels(tokens, T, "tokens")
    if fig is None:
        fig = plt.figure(figsize=(2.2 * n_heads + 1, 2.2 * n_layers + 0.5), layout="constrained")
    fig.clear()
    axes = fig.subplots(n_layers, n_heads, squeeze=False)
    for layer, row in enumerate(axes):
        for head, ax in enumerate(row):
            plot_attention(layers[layer][batch_index, head], tokens, ax=ax, vmax=1.0)
            ax.set_title(f"layer {layer}, head {head}", fontsize=8)
            ax.set_xlabel("")
            ax.set_ylabel("")
            if layer < n_layers - 1:  # labels on the outer edge only
                ax.set_xticklabels([])
            if head > 0:
                ax.set_yticklabels([])
    fig.supxlabel("key (attended to)")
    fig.supylabel("query (attending)")
    return fig


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
    Use: `from bertviz import head_view; head_view(**to_bertviz(attentions, tokens))`.
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
        out["encoder_tokens"] = _labels(tokens, out["encoder_attention"][0].shape[-1], "tokens")
        out["decoder_tokens"] = _labels(target_tokens, out["decoder_attention"][0].shape[-1], "target_tokens")
        return out
    attention = one_item(attentions)
    return {"attention": attention, "tokens": _labels(tokens, attention[0].shape[-1], "tokens")}


# ----------------------------------------------------------------------------- masks and positions


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
    m = _as_array(m, "mask", ndim=2, shape_doc="(Tq, Tk)", hint="pick one item and head, e.g. mask[b, h]")
    ax = ax if ax is not None else _new_axes((max(3, 1 + 0.4 * m.shape[1]), max(2, 0.8 + 0.4 * m.shape[0])))
    ax.imshow(m.astype(float), cmap="Blues", vmin=0.0, vmax=1.25, interpolation="nearest")
    ax.set_xticks(np.arange(-0.5, m.shape[1]), minor=True)  # thin grid lines between the cells
    ax.set_yticks(np.arange(-0.5, m.shape[0]), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    _tick_labels(ax, q_tokens, k_tokens, m.shape)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_title(title or "mask (filled = may attend)")
    return ax


def plot_sinusoidal(max_len, d_model, ax=None):
    """The sinusoidal encoding table (max_len, d_model) as a heat map: positions down, dimensions across.

    Left columns oscillate fast (short wavelengths), right columns slowly: every position gets a
    distinct pattern. Returns the axes; the table is `ax.images[0].get_array()`.
    """
    table = sinusoidal_table(max_len, d_model).numpy()  # (T, C)
    ax = ax if ax is not None else _new_axes((6, 4))
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
    ax = ax if ax is not None else _new_axes((5, 4))
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
    ax = ax if ax is not None else _new_axes((4.5, 4.5))
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


# ----------------------------------------------------------------------------- decoding


def plot_next_token_stages(stages, tokenizer=None, top=15, fig=None, chosen=None, title=None):
    """How each processing stage reshapes the next-token distribution, one panel per stage.

    stages: [(name, logits (V,) or (1, V)), ...], the output of `mt.logits_stages` for one
    sequence, or the dict returned by `generation.next_token_distribution`. The same `top`
    tokens (the most likely ones of the first stage) appear in every panel. A filled bar is a
    kept token's probability after that stage; a token the stage removed (logit -inf) is an
    empty grey outline as wide as its probability was before the stage. chosen: a token id to
    mark with an arrow (the token that was actually picked). Returns the figure.
    See `next_token_stages_html` for the same picture as an HTML table.
    """
    table = _stage_bars(stages, tokenizer, top, chosen)
    if fig is None:
        fig = plt.figure(figsize=(1.2 + 2.3 * len(table["names"]), 1.3 + 0.26 * table["top"]))
    axes = _stage_panels(fig, len(table["names"]), table["top"])
    for ax, name, n_kept, bars in zip(axes, table["names"], table["n_kept"], table["bars"]):
        for bar, (width, is_kept) in zip(ax.patches, bars):  # one bar per token
            bar.set_width(width)
            bar.set_visible(width > 0)
            bar.set_fill(is_kept)  # removed: an empty outline
            bar.set_edgecolor(KEPT_COLOR if is_kept else REMOVED_COLOR)
            bar.set_linestyle("-" if is_kept else "--")
        ax.set_title(f"{name}\n{n_kept} of {table['vocab']} kept", fontsize=9, y=1.0)  # fixed y: no layout pass
        x_max = table["x_max"]
        ax.set(xlim=(0, x_max), xticks=[round(x_max * 0.8, 2)])
    axes[0].set_yticks(np.arange(table["top"]), table["labels"], fontsize=8)  # most likely at the top
    for tick, i in zip(axes[0].get_yticklabels(), table["ids"]):
        tick.set_color(CHOSEN_COLOR if i == chosen else "black")
    fig.suptitle(title or "", fontsize=9)
    return fig


def next_token_stages_html(stages, tokenizer=None, top=15, chosen=None, title=None) -> str:
    """`plot_next_token_stages` as an HTML table: one row per token, one bar column per stage.

    Same arguments and the same picture (bars from the same numbers, probabilities printed
    beside them). A widget shows this one: building it takes well under a millisecond, where
    matplotlib took 25-30 ms to draw and encode the figure, a fifth of a slider's time budget.
    """
    t = _stage_bars(stages, tokenizer, top, chosen)
    kept_color, removed_color = to_hex(KEPT_COLOR), to_hex(REMOVED_COLOR)  # the figure's colours
    cell = "padding:0 6px;line-height:1.3;white-space:nowrap"
    head = "".join(
        f"<th style='{cell};font-weight:normal'>{html.escape(name)}<br>{n} of {t['vocab']} kept</th>"
        for name, n in zip(t["names"], t["n_kept"])
    )
    rows = []
    for r, (label, token_id) in enumerate(zip(t["labels"], t["ids"])):
        color = f"color:{to_hex(CHOSEN_COLOR)}" if token_id == chosen else ""
        cells = [f"<td style='{cell};text-align:right;font-family:monospace;{color}'>{html.escape(label)}</td>"]
        for bars in t["bars"]:
            width, kept = bars[r]
            percent = 100 * width / t["x_max"]
            style = f"background:{kept_color}" if kept else f"border:1px dashed {removed_color};box-sizing:border-box"
            bar = f"<div style='display:inline-block;height:10px;width:{percent:.1f}%;{style}'></div>"
            shown = f"{width:.3f}" if kept else "removed"
            cells.append(
                f"<td style='{cell};width:140px'><div style='display:inline-block;width:90px'>{bar}</div>"
                f"<span style='font-size:80%;color:#555'> {shown}</span></td>"
            )
        rows.append(f"<tr>{''.join(cells)}</tr>")
    caption = f"<div style='font-size:90%;margin:2px 0'>{html.escape(title)}</div>" if title else ""
    return (
        f"{caption}<table style='border-collapse:collapse;font-size:85%'><tr><th></th>{head}</tr>"
        + "".join(rows)
        + "</table>"
    )


def _stage_bars(stages, tokenizer, top, chosen):
    """What both pictures of the stages draw: names, kept counts, token labels and bar widths.

    Bars: one list per stage of (width, kept) per token; a removed token keeps the width its
    probability had before that stage (drawn as an outline). x_max: one scale for every panel.
    """
    names, logits = _stage_table(stages)  # S names, (S, V)
    probs = logits.softmax(dim=-1)  # (S, V); a removed token gets exactly 0
    top = min(top, logits.shape[-1])
    ids = probs[0].topk(top).indices  # (top,) ranked by the first stage
    labels = [token_label(tokenizer, i) if tokenizer is not None else str(i) for i in ids.tolist()]
    bars = []
    for s in range(len(names)):
        kept = torch.isfinite(logits[s, ids]).tolist()
        now = probs[s, ids].tolist()
        before = probs[max(s - 1, 0), ids].tolist()  # a removed token's probability before this stage
        bars.append([(p if k else p_before, k) for k, p, p_before in zip(kept, now, before)])
    return {
        "names": names,
        "n_kept": torch.isfinite(logits).sum(dim=-1).tolist(),
        "vocab": logits.shape[-1],
        "top": top,
        "ids": ids.tolist(),
        "labels": [("→ " + s if i == chosen else s) for s, i in zip(labels, ids.tolist())],
        "bars": bars,
        "x_max": max(float(probs[:, ids].max()), 1e-6) * 1.05,
    }


def plot_beam_tree(trace, tokenizer=None, batch_index=0, ax=None, max_steps=None):
    """The search tree of a beam search, one column per step.

    trace: `generate(..., num_beams=K, return_trace=True).trace` (a list with one dict per prompt;
    `batch_index` picks one) or one prompt's dict; see `beam_search.record_step` for the format.
    Nodes are tokens; the edge into a node is labelled with the beam's total log-probability so
    far. Blue nodes are beams that went on, green ones finished hypotheses, grey ones candidates
    that were pruned; the best returned hypothesis is drawn in red. Returns the axes.
    """
    item = trace[batch_index] if isinstance(trace, (list, tuple)) else trace
    steps = item["steps"][:max_steps]
    best = max((h for h in item["finished"] if h["returned"]), key=lambda h: h["score"], default=None)
    best_tokens = tuple(best["tokens"]) if best else ()
    most = max((len(step["candidates"]) for step in steps), default=1)
    ax = ax if ax is not None else _new_axes((1.3 + 1.25 * len(steps), 1 + 0.42 * most))
    nodes = {(): (0.0, 0.0)}  # path of generated tokens -> (x, y); the root is the prompt
    beams = {0: ()}  # beam index -> its path, for the step being drawn
    for s, step in enumerate(steps, start=1):
        # order the candidates by their parent's height, then by score, so that edges seldom cross
        cands = sorted(step["candidates"], key=lambda c: (-nodes[beams[c["parent"]]][1], -c["score"]))
        next_beams = {}
        for row, c in enumerate(cands):
            parent = beams[c["parent"]]
            path = (*parent, c["token"])
            y = (len(cands) - 1) / 2 - row
            nodes[path] = (float(s), y)
            on_best = best_tokens[: len(path)] == path
            color = (
                CHOSEN_COLOR
                if on_best
                else "tab:green"
                if c["ends"]
                else KEPT_COLOR
                if c["beam"] is not None
                else REMOVED_COLOR
            )
            px, py = nodes[parent]
            ax.plot([px, s], [py, y], color=color, lw=1.8 if on_best else 0.8, zorder=1)
            ax.text(
                px + 0.6 * (s - px),
                py + 0.6 * (y - py),
                f"{c['score']:.1f}",
                fontsize=6,
                color=color,
                ha="center",
                va="bottom",
                zorder=3,
            )
            text = token_label(tokenizer, c["token"]) if tokenizer is not None else str(c["token"])
            ax.text(
                s,
                y,
                text,
                fontsize=9,
                ha="center",
                va="center",
                color=color,
                gid="node",
                zorder=4,
                bbox=dict(boxstyle="round,pad=0.25", fc="white", ec=color, lw=0.8),
            )
            if c["beam"] is not None:
                next_beams[c["beam"]] = path
        beams = next_beams
    prompt = "".join(token_label(tokenizer, i) for i in item["prompt"]) if tokenizer else "prompt"
    ax.text(
        0,
        0,
        prompt if len(prompt) <= 12 else "…" + prompt[-11:],
        fontsize=9,
        ha="center",
        va="center",
        gid="node",
        bbox=dict(boxstyle="round,pad=0.3", fc="0.92", ec="0.5"),
    )
    ax.set_xlim(-0.6, len(steps) + 0.6)
    ax.set_xticks(
        range(len(steps) + 1), ["prompt"] + [f"step {s}" for s in range(1, len(steps) + 1)], fontsize=8
    )
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    if best is not None:
        ax.set_title(f"best hypothesis: score {best['score']:.3f} (red); grey = pruned", fontsize=9)
    return ax


# ----------------------------------------------------------------------------- training and embeddings


def plot_history(history, ax=None):
    """Training and validation loss by step, with the learning rate on a second y axis.

    history: `Trainer.history`, a list of dicts with "step", "train_loss", "lr" and, at
    evaluation steps, "val_loss". Returns the loss axes (the lr axes is `ax.lr_axes`).
    """
    if not history:
        raise ValueError("history is empty: train for at least one step first (trainer.fit())")
    ax = ax if ax is not None else _new_axes((7, 3.5))
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["train_loss"] for h in history], color="tab:blue", lw=1, label="train loss")
    val = [(h["step"], h["val_loss"]) for h in history if "val_loss" in h]
    if val:
        ax.plot(*zip(*val), "o-", color="tab:orange", label="val loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    lr_axes = ax.twinx()
    lr_axes.plot(steps, [h["lr"] for h in history], color="0.5", lw=1, linestyle=":", label="lr")
    lr_axes.set_ylabel("learning rate", color="0.4")
    lines = ax.get_lines() + lr_axes.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="upper right", fontsize=8)
    ax.lr_axes = lr_axes
    return ax


class LivePlot:
    """A Trainer callback that redraws the loss curves in a notebook every `every` steps.

        live = LivePlot(every=50)
        Trainer(model, task, cfg, callback=live).fit()

    In a notebook it shows one image and updates it in place (an IPython display handle).
    Elsewhere (a script, pytest) it only keeps `live.fig` up to date and prints nothing.
    """

    def __init__(self, every: int = 50, figsize=(7, 3.5)):
        if not isinstance(every, int) or every < 1:
            raise ValueError(
                f"every must be a positive integer (steps between redraws), got {describe(every)}"
            )
        from matplotlib.figure import Figure  # not pyplot: a notebook should not show it a second time

        self.every, self.fig, self.updates, self._handle = every, Figure(figsize=figsize), 0, None

    def __call__(self, trainer):
        if trainer.step % self.every == 0 or trainer.step == trainer.cfg.steps:
            self.update(trainer.history)

    def update(self, history):
        """Redraw from a history list (see plot_history)."""
        self.fig.clear()
        plot_history(history, ax=self.fig.add_subplot())
        self.fig.tight_layout()
        self.updates += 1
        if not _in_notebook():
            return
        from IPython.display import Image, display

        image = Image(data=figure_png(self.fig))
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)


def plot_embeddings_pca(embedding_weight, labels=None, ax=None):
    """Token embeddings projected on their two main directions (PCA), each point labelled.

    embedding_weight: (V, C), e.g. `model.embed.tokens.weight`; labels: V strings (a string
    counts one label per character), or None for the ids. Returns the axes; the points are
    `ax.collections[0].get_offsets()`.
    """
    x = torch.as_tensor(embedding_weight).detach().float().cpu()
    if x.dim() != 2 or x.shape[0] < 2:
        raise ShapeError(f"embedding_weight must have shape (V, C) with V >= 2, got {tuple(x.shape)}")
    labels = [str(i) for i in range(x.shape[0])] if labels is None else _labels(labels, x.shape[0], "labels")
    centered = x - x.mean(dim=0)  # (V, C)
    _, singular, vh = torch.linalg.svd(centered, full_matrices=False)
    coords = (centered @ vh[:2].T).numpy()  # (V, 2): coordinates along the two main directions
    explained = (singular**2 / (singular**2).sum())[:2].tolist()
    ax = ax if ax is not None else _new_axes((6, 6))
    ax.scatter(coords[:, 0], coords[:, 1], s=8, color="0.7")
    for (px, py), label in zip(coords, labels):
        ax.text(px, py, show_token(label), fontsize=8, ha="center", va="center")
    ax.set_xlabel(f"PC 1 ({explained[0]:.0%} of the variance)")
    ax.set_ylabel(f"PC 2 ({explained[1]:.0%} of the variance)" if len(explained) > 1 else "PC 2")
    ax.set_title("token embeddings, first two principal components")
    return ax


# ----------------------------------------------------------------------------- helpers


def figure_png(fig, dpi=None) -> bytes:
    """The figure as PNG bytes (for an ipywidgets.Image or IPython.display.Image)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})  # fast over small
    return buffer.getvalue()


def _new_axes(figsize):
    """A new pyplot figure with one axes (constrained layout keeps the labels inside)."""
    return plt.subplots(figsize=figsize, layout="constrained")[1]


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (where display() reaches a front end)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _as_array(x, name, ndim, shape_doc, hint=""):
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy() if x.dtype != torch.bool else x.cpu().numpy()
    x = np.asarray(x)
    if x.ndim != ndim:
        raise ShapeError(f"{name} must have shape {shape_doc}, got {x.shape}" + (f"; {hint}" if hint else ""))
    return x


def _labels(tokens, n, name):
    tokens = list(tokens)  # a string gives one label per character
    if len(tokens) != n:
        raise ShapeError(f"{name} has {len(tokens)} labels, but the data has {n} positions")
    return [str(t) for t in tokens]


def _label_size(n):
    return max(5, min(10, 220 / max(n, 1)))


def _tick_labels(ax, q_tokens, k_tokens, shape):
    size = _label_size(max(shape))
    if k_tokens is not None:
        ax.set_xticks(
            range(shape[1]),
            [show_token(t) for t in _labels(k_tokens, shape[1], "k_tokens")],
            rotation=90,
            fontsize=size,
        )
    if q_tokens is not None:
        ax.set_yticks(
            range(shape[0]), [show_token(t) for t in _labels(q_tokens, shape[0], "q_tokens")], fontsize=size
        )


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


def _stage_panels(fig, n_stages, top):
    """The figure's n_stages panels: reused if the last call drew the same layout, else made anew.

    Making axes, ticks and bars is most of matplotlib's time, and a widget redraws this figure on
    every slider move, so an unchanged layout keeps all of them and only resizes the bars.
    """
    layout = f"next-token-stages {n_stages} {top}"
    if fig.axes and fig.axes[0].get_gid() == layout and len(fig.axes) == n_stages:
        return fig.axes
    fig.clear()
    axes = fig.subplots(1, n_stages, squeeze=False)[0]
    axes[0].set_gid(layout)
    for ax in axes:
        ax.barh(np.arange(top), np.zeros(top), color=KEPT_COLOR)  # the bars, resized on every call
        ax.set(ylim=(top - 0.5, -0.5), yticks=[])
        ax.tick_params(axis="x", labelsize=7)
    fig.supxlabel("probability", fontsize=9)
    fig.subplots_adjust(
        left=0.9 / fig.get_figwidth(),
        right=0.98,
        top=1 - 0.75 / fig.get_figheight(),
        bottom=0.5 / fig.get_figheight(),
        wspace=0.15,
    )
    return axes


def _stage_table(stages):
    """stages as [(name, logits)] or next_token_distribution's dict -> (names, logits (S, V))."""
    if isinstance(stages, dict):  # next_token_distribution: probabilities; log turns 0 into -inf
        names = [s["name"] for s in stages["stages"]]
        rows = [torch.as_tensor(s["probs"]).float().log() for s in stages["stages"]]
    else:
        names = [name for name, _ in stages]
        rows = [torch.as_tensor(x).detach().float().cpu() for _, x in stages]
    if not rows:
        raise ValueError("stages is empty: pass the output of mt.logits_stages(...)")
    for name, row in zip(names, rows):
        if row.dim() == 2 and row.shape[0] != 1 or row.dim() > 2:
            raise ShapeError(
                f"stage {name!r} has logits of shape {tuple(row.shape)}: plot one sequence, "
                "(V,) or (1, V); for a batch take [b:b+1]"
            )
    return names, torch.stack([row.reshape(-1) for row in rows])  # (S, V)
