"""A model's block diagram, drawn from its config and its modules, so that it cannot disagree with the code.

    plot_architecture(model)   GPT, MaskedLM, or Seq2SeqTransformer (encoder and decoder side by side)
    parameter_parts(model)     {part: parameters}, the counts printed on the diagram

Sub-layers appear in the order a block's `forward` runs them, the LayerNorm before (pre-LN) or after
(post-LN) each residual add as `block.norm_first` says. Counts come from the modules' parameters, each
tensor once (a tied output layer adds 0), so they sum to `model.num_parameters()`. No weight's value is
read: a model built on the `meta` device (`with torch.device("meta"): mt.GPT(cfg)`) draws too.
Used by notebooks 00 (start here) and 05 (Transformer models).
"""

from __future__ import annotations

from typing import NamedTuple

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Circle, FancyBboxPatch, Rectangle
from matplotlib.textpath import text_to_path
from torch import nn

from ..errors import describe
from ..models import GPT, MaskedLM, Seq2SeqTransformer

COLORS = {"embed": "#f6d3d3", "norm": "#fbf1b8", "attn": "#fcd9b0", "cross": "#f9c08a", "ffn": "#cfe3f7",
          "head": "#e0d4f0", "io": "none", "add": "white"}
ACTIVATION_NAMES = {"gelu": "GELU", "gelu_tanh": "GELU (tanh)", "relu": "ReLU"}
FONT = 8.5  # points; every length below is in inches (the axes draw 1 data unit = 1 inch)
ROW_H, ADD_H, GAP, PAD = 0.3, 0.22, 0.17, 0.12  # a box's height, a residual add's, the gaps between
LANE = 0.95  # left of the boxes: the "N ×" label and the residual lines
POSITIONS = {"learned": "learned positions", "sinusoidal": "sinusoidal positions", "rope": "rotary positions (RoPE)",
             "none": "no positional encoding"}
FAMILIES = {GPT: "decoder-only", MaskedLM: "encoder-only", Seq2SeqTransformer: "encoder-decoder"}


class Box(NamedTuple):  # one row of a column: a box, a residual add or a bare label
    text: str
    count: str  # what the parameter column says on this row ("" for none)
    kind: str  # a key of COLORS
    key: str = ""  # a name to point at (the encoder's "memory", the decoder's "cross")


class Stack(NamedTuple):
    n: int  # how many identical blocks
    rows: list  # one block's rows, bottom to top
    total: int  # parameters of all n blocks together

    def footer(self) -> str:
        return f"{self.n} blocks × {self.total // self.n:,} ="  # the blocks are identical


def _params(module) -> str:
    return f"{sum(p.numel() for p in module.parameters()):,}"


def _check_model(model):
    if not isinstance(model, (GPT, MaskedLM, Seq2SeqTransformer)):
        raise TypeError(f"model must be an mt.GPT, mt.MaskedLM or mt.Seq2SeqTransformer, got {type(model).__name__} "
                        f"{describe(model)}; a Hugging Face GPT-2 converts with mt.GPT.from_hf_gpt2(model)")


def _part_modules(model) -> list[tuple[str, list[nn.Module]]]:
    """The diagram's parts in drawing order; the token embedding comes first, so it owns a tied matrix."""
    embed = model.embed
    positions = embed.positions if embed.positions is not None else embed.rotary
    parts = [("token embedding", [embed.tokens]), ("positions", [positions])]
    if isinstance(model, Seq2SeqTransformer):
        parts += [("encoder blocks", list(model.encoder)), ("encoder final LayerNorm", [model.encoder_norm]),
                  ("decoder blocks", list(model.decoder)), ("decoder final LayerNorm", [model.decoder_norm])]
    else:
        parts += [("blocks", list(model.blocks)), ("final LayerNorm", [model.norm_f])]
    if isinstance(model, MaskedLM):
        parts.append(("MLM head dense + LayerNorm", [model.head_dense, model.head_norm]))
    parts.append(("output layer", [model.lm_head]))
    return [(name, modules) for name, modules in parts if all(m is not None for m in modules)]


def parameter_parts(model) -> dict[str, int]:
    """{part name: parameters} in drawing order; a shared tensor counts once, for the first part that has it.

    The values sum to `model.num_parameters()` (anything no part covers would show up as "other").
    """
    _check_model(model)
    seen, counts = set(), {}
    for name, modules in _part_modules(model):
        new = [p for m in modules for p in m.parameters() if id(p) not in seen]
        seen.update(id(p) for p in new)
        counts[name] = sum(p.numel() for p in new)
    rest = sum(p.numel() for p in model.parameters() if id(p) not in seen)
    return counts | ({"other": rest} if rest else {})


def _block_rows(block, cfg, causal: bool) -> list[Box]:
    """One block's rows in the order its forward runs them: sub-layer, residual add, LayerNorm placement."""
    heads = f"{cfg.n_heads} heads × d_head {cfg.d_head}"
    attn = ("masked self-attention" if causal else "self-attention, both ways") + f" · {heads}"
    subs = [(attn + (" · RoPE" if cfg.pos_encoding == "rope" else ""), "attn", block.self_attn)]
    if hasattr(block, "cross_attn"):
        subs.append((f"cross-attention · {heads}", "cross", block.cross_attn))  # to the memory: a red arrow
    act = ACTIVATION_NAMES.get(block.ffn.activation, block.ffn.activation)
    w1 = block.ffn.linear1
    subs.append((f"feed-forward {w1.in_features} → {w1.out_features} → {w1.in_features} · {act}", "ffn", block.ffn))
    norms = [getattr(block, f"norm{i + 1}") for i in range(len(subs))]  # norm1 with sub-layer 1, ...
    rows = []
    for (text, kind, module), norm in zip(subs, norms):
        sub = Box(text, _params(module), kind, key=kind)
        ln, add = Box("LayerNorm", _params(norm), "norm"), Box("+", "", "add")
        rows += [ln, sub, add] if block.norm_first else [sub, add, ln]
    return rows


def _embedding_rows(model, counts, shared=False) -> list[Box]:
    cfg, shown = model.config, (lambda n: "shared" if shared else f"{n:,}")
    rows = [Box(f"token embedding {cfg.vocab_size} × {cfg.d_model}" + (" (shared)" if shared else ""),
                shown(counts["token embedding"]), "embed")]
    texts = {"learned": f"+ learned positions {cfg.max_len} × {cfg.d_model}",
             "sinusoidal": "+ sinusoidal positions (a fixed table)",
             "rope": "rotary positions (RoPE): q, k turned in attention"}
    if cfg.pos_encoding in texts:
        rows.append(Box(texts[cfg.pos_encoding], shown(counts["positions"]), "embed"))
    return rows


def _output_rows(model, counts, norm_part) -> list[Box]:
    cfg, rows = model.config, []
    if norm_part in counts:
        rows.append(Box("final LayerNorm", f"{counts[norm_part]:,}", "norm"))
    if isinstance(model, MaskedLM):
        rows.append(Box(f"MLM head: dense {cfg.d_model} → {cfg.d_model} · GELU · LayerNorm",
                        f"{counts['MLM head dense + LayerNorm']:,}", "head"))
    tied = "weight tied to embedding" if cfg.tie_weights else "own weight"
    rows.append(Box(f"output layer {cfg.d_model} → {cfg.vocab_size} · {tied}", f"{counts['output layer']:,}", "head"))
    return rows


def _columns(model) -> list[tuple[str, list]]:
    """(heading, rows bottom to top) per column: one for GPT and MaskedLM, encoder and decoder for seq2seq."""
    cfg, counts = model.config, parameter_parts(model)
    v = cfg.vocab_size
    if not isinstance(model, Seq2SeqTransformer):
        stack = Stack(cfg.n_layers, _block_rows(model.blocks[0], cfg, isinstance(model, GPT)), counts["blocks"])
        rows = [Box("token ids (B, T)", "", "io"), *_embedding_rows(model, counts), stack,
                *_output_rows(model, counts, "final LayerNorm"), Box(f"logits (B, T, V={v})", "", "io")]
        return [("", rows)]
    encoder = [Box("source ids (B, S)", "", "io"), *_embedding_rows(model, counts),
               Stack(cfg.n_layers, _block_rows(model.encoder[0], cfg, False), counts["encoder blocks"])]
    if "encoder final LayerNorm" in counts:
        encoder.append(Box("final LayerNorm", f"{counts['encoder final LayerNorm']:,}", "norm"))
    encoder.append(Box(f"memory (B, S, C={cfg.d_model})", "", "io", key="memory"))
    decoder = [Box("target ids (B, T)", "", "io"), *_embedding_rows(model, counts, shared=True),
               Stack(cfg.n_layers, _block_rows(model.decoder[0], cfg, True), counts["decoder blocks"]),
               *_output_rows(model, counts, "decoder final LayerNorm"), Box(f"logits (B, T, V={v})", "", "io")]
    return [("encoder", encoder), ("decoder", decoder)]


def _title(model) -> tuple[str, str]:
    cfg = model.config
    family = next(name for kind, name in FAMILIES.items() if isinstance(model, kind))
    layers = f"{cfg.n_layers} encoder + {cfg.n_layers} decoder layers" if family == "encoder-decoder" else (
        f"{cfg.n_layers} layers")
    facts = [layers, f"{cfg.n_heads} heads", f"d_model {cfg.d_model}", f"d_head {cfg.d_head}", f"d_ff {cfg.d_ff}",
             f"vocab {cfg.vocab_size:,}", f"context {cfg.max_len:,}", "pre-LN" if cfg.norm_first else "post-LN",
             POSITIONS[cfg.pos_encoding], "tied output" if cfg.tie_weights else "untied output"]
    half = (len(facts) + 1) // 2
    heading = f"{type(model).__name__} ({family}): {model.num_parameters():,} parameters"
    return heading, " · ".join(facts[:half]) + "\n" + " · ".join(facts[half:])


# ----------------------------------------------------------------------------- drawing


def _height(rows) -> float:
    """Inches from the bottom of the first row to the top of the last (a block: its padding and footer too)."""
    return GAP * (len(rows) - 1) + sum(_height(r.rows) + 2 * PAD + ROW_H if isinstance(r, Stack) else
                                       ADD_H if r.kind == "add" else ROW_H for r in rows)


def _text_width(text: str) -> float:
    """Inches that text takes in the default font (laid out without a renderer), plus 10% to be safe."""
    return 1.1 * text_to_path.get_text_width_height_descent(text, FontProperties(size=FONT), ismath=False)[0] / 72


def _widths(columns) -> tuple[float, float]:
    """The boxes' width (the longest label; a block's footer in the right half of its frame) and the counts'."""
    stacks = [r for _, col in columns for r in col if isinstance(r, Stack)]
    rows = [r for _, col in columns for r in col if isinstance(r, Box)] + [r for s in stacks for r in s.rows]
    labels = [_text_width(r.text) + 0.3 for r in rows if r.kind != "io"]
    counts = [_text_width(r.count) for r in rows] + [_text_width(f"{s.total:,}") for s in stacks]
    return max(3.0, *labels, *(2 * _text_width(s.footer()) + 0.3 for s in stacks)), max(1.05, max(counts) + 0.25)


def _arrow(ax, points, color="0.2"):
    """A polyline through points whose last segment ends in an arrow head."""
    if len(points) > 2:
        ax.plot(*zip(*points[:-1]), color=color, lw=1, solid_capstyle="butt")
    ax.annotate("", xy=points[-1], xytext=points[-2], arrowprops=dict(arrowstyle="-|>", color=color, lw=1,
                                                                       shrinkA=0, shrinkB=0))


class _Drawing:
    """Draws columns of rows on axes whose data unit is an inch; keys remembers where named rows went."""

    def __init__(self, ax, widths: tuple[float, float]):
        (self.w, self.count_w), self.ax, self.keys = widths, ax, {}
        self.column_width = LANE + self.w + self.count_w + 0.15

    def column(self, heading: str, rows, x0: float, y: float):
        """One stack of rows from the bottom up, with its parameter column on the right."""
        ax, xc = self.ax, x0 + LANE + self.w / 2
        count_x = xc + self.w / 2 + self.count_w
        if heading:
            ax.text(xc, y + _height(rows) + 0.3, heading, ha="center", va="center", fontsize=FONT + 2,
                    weight="bold")
        ax.text(count_x, y + ROW_H / 2, "parameters\n(grey: in one block)", ha="right", va="center",
                fontsize=FONT - 0.5, color="0.4", style="italic")  # on the ids row, which has no count
        for i, row in enumerate(rows):
            if i:
                _arrow(ax, [(xc, y - GAP), (xc, y)])
            h = self.stack(row, xc, y, count_x) if isinstance(row, Stack) else self.box(row, xc, y, count_x)
            y += h + GAP

    def box(self, row: Box, xc: float, y: float, count_x: float, per_block=False) -> float:
        """Draw one row with its bottom at y; return its height."""
        ax, h = self.ax, ADD_H if row.kind == "add" else ROW_H
        if row.kind == "add":
            ax.add_patch(Circle((xc, y + h / 2), h / 2, facecolor="white", edgecolor="0.2", lw=1))
        elif row.kind != "io":
            ax.add_patch(FancyBboxPatch((xc - self.w / 2, y), self.w, h, boxstyle="round,pad=0,rounding_size=0.05",
                                        facecolor=COLORS[row.kind], edgecolor="0.3", lw=0.8))
        ax.text(xc, y + h / 2, row.text, ha="center", va="center", fontsize=FONT + (1 if row.kind == "add" else 0))
        if row.count:
            ax.text(count_x, y + h / 2, row.count, ha="right", va="center", fontsize=FONT,
                    color="0.4" if per_block else "black", style="italic" if per_block else "normal")
        if row.key:  # the memory leaves from its text's right, cross-attention is entered from the left
            self.keys[row.key] = (xc + (0.95 if row.kind == "io" else -self.w / 2), y + h / 2, count_x)
        return h

    def stack(self, stack: Stack, xc: float, y: float, count_x: float) -> float:
        """The N × block: a frame round one block's rows, residual lines on the left, a footer with the counts."""
        ax, left, right = self.ax, xc - self.w / 2 - 0.4, xc + self.w / 2 + 0.1
        top = y + 2 * PAD + ROW_H + _height(stack.rows)
        ax.add_patch(Rectangle((left, y), right - left, top - y, facecolor="0.96", edgecolor="0.5", lw=0.8,
                               zorder=0))
        footer_y = y + PAD / 2 + ROW_H / 2  # "N ×" sits low, clear of the cross-attention arrow
        ax.text(left - 0.05, footer_y, f"{stack.n} ×", ha="right", va="center", fontsize=FONT + 3.5, weight="bold")
        ax.text(xc + 0.1, footer_y, stack.footer(), ha="left", va="center", fontsize=FONT, color="0.3")
        ax.text(count_x, footer_y, f"{stack.total:,}", ha="right", va="center", fontsize=FONT)
        row_y, bottoms = y + PAD + ROW_H, []
        _arrow(ax, [(xc, y), (xc, row_y)])  # the stream enters the block
        for i, row in enumerate(stack.rows):
            if i:
                _arrow(ax, [(xc, row_y - GAP), (xc, row_y)])
            bottoms.append(row_y)
            row_y += self.box(row, xc, row_y, count_x, per_block=True) + GAP
        lane = xc - self.w / 2 - 0.18
        for i, row in enumerate(stack.rows):  # each add takes the stream from below its trio:
            if row.kind == "add":  # [LayerNorm, sub-layer, +] pre-LN or [sub-layer, +, LayerNorm] post-LN
                y0, y1 = bottoms[i // 3 * 3] - GAP / 2, bottoms[i] + ADD_H / 2
                _arrow(ax, [(xc, y0), (lane, y0), (lane, y1), (xc - ADD_H / 2, y1)], color="0.35")
        return top - y

    def memory_to_cross(self):
        """The encoder's output gives the keys and values of every cross-attention (one arrow, drawn in red)."""
        if "memory" not in self.keys:
            return
        (mx, my, count_x), (cx, cy, _) = self.keys["memory"], self.keys["cross"]
        lane = count_x + 0.3  # between the encoder's counts and the decoder's "N ×"
        _arrow(self.ax, [(mx, my), (lane, my), (lane, cy), (cx, cy)], color="tab:red")


def plot_architecture(model, ax=None):
    """The block diagram of an mt.GPT, mt.MaskedLM or mt.Seq2SeqTransformer, from bottom (ids) to top (logits).

    Boxes: token embedding and positions, the N × block with its sub-layers in the order they run
    (LayerNorm placement, residual adds, heads × d_head, feed-forward widths and activation), the final
    LayerNorm, the output layer (tied or not). The right-hand column gives each part's parameters
    (grey: one block's sub-layers), which sum to model.num_parameters(). ax: axes to draw on (the caller
    sizes them); by default a new figure of the size the diagram needs. Returns the figure.
    """
    _check_model(model)
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {describe(ax)}")
    columns = _columns(model)
    drawing = _Drawing(ax, _widths(columns))
    body = max(_height(rows) for _, rows in columns) + (0.6 if len(columns) > 1 else 0.0)
    width, height = (drawing.column_width + 0.5) * len(columns) - 0.3, body + 1.15
    if ax is None:
        drawing.ax = ax = plt.figure(figsize=(width, height)).add_axes((0, 0, 1, 1))
    ax.set(xlim=(0, width), ylim=(0, height), aspect="equal")
    ax.axis("off")
    heading, facts = _title(model)
    ax.text(width / 2, height - 0.22, heading, ha="center", va="center", fontsize=FONT + 2.5, weight="bold")
    ax.text(width / 2, height - 0.62, facts, ha="center", va="center", fontsize=FONT, linespacing=1.4)
    for i, (name, rows) in enumerate(columns):
        drawing.column(name, rows, 0.1 + i * (drawing.column_width + 0.5), 0.15)
    drawing.memory_to_cross()
    return ax.figure
