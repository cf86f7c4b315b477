"""Decoding as pictures: how each logits processor reshapes the next-token distribution.

`plot_next_token_stages` draws one panel per stage with matplotlib; `next_token_stages_html` draws the same bars
as an HTML table, fast enough for a slider. Used by notebooks 10 and 11 and by the sampling explorer widget.
"""

from __future__ import annotations

import html

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import to_hex
from matplotlib.ticker import MaxNLocator

from ..errors import ShapeError
from ._common import CHOSEN_COLOR, KEPT_COLOR, REMOVED_COLOR, token_label

# The HTML table's styles, in the figure's colours.
_CELL = "padding:0 6px;line-height:1.3;white-space:nowrap"
_KEPT_BAR = f"background:{to_hex(KEPT_COLOR)}"
_REMOVED_BAR = f"border:1px dashed {to_hex(REMOVED_COLOR)};box-sizing:border-box"
_OUTLINE_COLOR = "0.4"  # a removed token's outline in the figure: darker than REMOVED_COLOR, to show on white


def plot_next_token_stages(stages, tokenizer=None, top=15, fig=None, chosen=None, title=None, settings=None):
    """How each processing stage reshapes the next-token distribution, one panel per stage.

    stages: [(name, logits (V,) or (1, V)), ...], the output of `mt.logits_stages` for one
    sequence, or the dict returned by `generation.next_token_distribution`. The same `top`
    tokens (the most likely ones of the first stage) appear in every panel. A filled bar is a
    kept token's probability after that stage; a token the stage removed (logit -inf) is an
    empty dashed outline as wide as its probability was before the stage. chosen: a token id to
    mark with an arrow (the token that was actually picked). title: the figure's title; by
    default the settings of the stages drawn (`settings=`, a `LogitsSettings` or generate's
    settings; the dict of `next_token_distribution` brings its own). Returns the figure.
    See `next_token_stages_html` for the same picture as an HTML table.
    """
    if settings is None and isinstance(stages, dict):
        settings = stages.get("settings")
    table = _stage_bars(stages, tokenizer, top, chosen)
    if fig is None:
        fig = plt.figure(figsize=(1.45 + 2.3 * len(table["names"]), 1.4 + 0.26 * table["top"]))
    axes = _stage_panels(fig, len(table["names"]), table["top"])
    for ax, name, n_kept, bars in zip(axes, table["names"], table["n_kept"], table["bars"]):
        for bar, (width, is_kept) in zip(ax.patches, bars):  # one bar per token
            bar.set_width(width)
            bar.set_visible(width > 0)
            bar.set_fill(is_kept)  # removed: an empty outline
            bar.set_edgecolor(KEPT_COLOR if is_kept else _OUTLINE_COLOR)
            bar.set_linestyle("-" if is_kept else "--")
            bar.set_linewidth(0.8 if is_kept else 1.2)
        # A fixed y saves matplotlib a layout pass.
        ax.set_title(f"{name}\n{n_kept} of {table['vocab']} kept", fontsize=9, y=1.0)
        ax.set_xlim(0, table["x_max"])  # one scale for every panel; the locator places the ticks
    axes[0].set_yticks(np.arange(table["top"]), table["labels"], fontsize=8)  # most likely at the top
    for tick, i in zip(axes[0].get_yticklabels(), table["ids"]):
        tick.set_color(CHOSEN_COLOR if i == chosen else "black")
    fig.suptitle(title if title is not None else _settings_title(table["names"], settings), fontsize=9)
    return fig


# The setting behind each stage of `logits_stages`, by generate's argument name.
_STAGE_SETTING = {
    "repetition penalty": "repetition_penalty",
    "no-repeat n-gram": "no_repeat_ngram_size",
    "temperature": "temperature",
    "top-k": "top_k",
    "top-p": "top_p",
    "min-p": "min_p",
    "typical": "typical_p",
}


def _settings_title(stage_names, settings=None) -> str:
    """A title naming the setting of every stage drawn: 'settings: temperature=0.8, top_k=20, top_p=0.9'.

    Without settings, the stages' names alone ('stages: raw, top-k'): logits carry no settings.
    """
    names = [name for name in stage_names if name in _STAGE_SETTING]
    if not names:
        return "the raw next-token distribution"
    if settings is None:
        return "stages: " + ", ".join(stage_names)
    values = [f"{_STAGE_SETTING[n]}={getattr(settings, _STAGE_SETTING[n])}" for n in names]
    return "settings: " + ", ".join(values)


def next_token_stages_html(stages, tokenizer=None, top=15, chosen=None, title=None) -> str:
    """`plot_next_token_stages` as an HTML table: one row per token, one bar column per stage.

    Same arguments and the same picture (bars from the same numbers, probabilities printed
    beside them). A widget shows this one: building it takes well under a millisecond, where
    matplotlib took 25-30 ms to draw and encode the figure, a fifth of a slider's time budget.
    """
    t = _stage_bars(stages, tokenizer, top, chosen)
    head = "".join(
        f"<th style='{_CELL};font-weight:normal'>{html.escape(name)}<br>{n} of {t['vocab']} kept</th>"
        for name, n in zip(t["names"], t["n_kept"])
    )
    rows = []
    for r, (label, token_id) in enumerate(zip(t["labels"], t["ids"])):
        color = f"color:{to_hex(CHOSEN_COLOR)}" if token_id == chosen else ""
        label_cell = (
            f"<td style='{_CELL};text-align:right;font-family:monospace;{color}'>{html.escape(label)}</td>"
        )
        bar_cells = [_html_bar(*bars[r], x_max=t["x_max"]) for bars in t["bars"]]
        rows.append(f"<tr>{label_cell}{''.join(bar_cells)}</tr>")
    caption = f"<div style='font-size:90%;margin:2px 0'>{html.escape(title)}</div>" if title else ""
    return (
        f"{caption}<table style='border-collapse:collapse;font-size:85%'><tr><th></th>{head}</tr>"
        + "".join(rows)
        + "</table>"
    )


def _html_bar(width: float, kept: bool, x_max: float) -> str:
    """One table cell: a bar as the figure draws it (filled if kept, a dashed outline if removed), and its value."""
    style = _KEPT_BAR if kept else _REMOVED_BAR
    bar = f"<div style='display:inline-block;height:10px;width:{100 * width / x_max:.1f}%;{style}'></div>"
    shown = f"{width:.3f}" if kept else "removed"
    return (
        f"<td style='{_CELL};width:140px'><div style='display:inline-block;width:90px'>{bar}</div>"
        f"<span style='font-size:80%;color:#555'> {shown}</span></td>"
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
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))  # round ticks at any scale
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", color="0.9", lw=0.6)
        ax.set_axisbelow(True)
    axes[0].set_ylabel("next token (most likely first)", fontsize=9)
    fig.supxlabel("probability after the stage", fontsize=9)
    fig.subplots_adjust(
        left=1.15 / fig.get_figwidth(),
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
