"""Beam search as a picture: the tree of candidates it weighed, one column per step.

Reads the trace that `generate(..., num_beams=K, return_trace=True)` records (see `beam_search.record_step`).
Used by notebooks 10 and 11 and by the beam search explorer widget.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from ._common import CHOSEN_COLOR, KEPT_COLOR, REMOVED_COLOR, new_axes, token_label

FINISHED_COLOR = "tab:green"


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
    most = max((len(step["candidates"]) for step in steps), default=1)
    ax = ax if ax is not None else new_axes((1.3 + 1.25 * len(steps), 1.2 + 0.42 * most))
    best_sum = None  # the best hypothesis's sum of log-probs: the score on its last edge
    for node in _tree_nodes(steps, best_tokens=tuple(best["tokens"]) if best else ()):
        _draw_node(ax, node, tokenizer)
        if node.on_best and node.depth == len(best["tokens"]):
            best_sum = node.candidate["score"]
    _draw_prompt(ax, item["prompt"], tokenizer)
    _label_steps(ax, len(steps))
    if best is not None:
        ax.set_title(_best_title(best, best_sum), fontsize=9)
    return ax


def _best_title(best, best_sum) -> str:
    """The ranking score of the best hypothesis, reconciled with the sum on its last edge."""
    n = len(best["tokens"])
    if best_sum is None:  # its last step lies beyond max_steps
        return f"best hypothesis (red): score {best['score']:.3f}; grey = pruned"
    return (
        f"best hypothesis (red): score {best['score']:.3f} = sum of log-probs {best_sum:.2f} (its last edge)"
        f" / {n} tokens ** length_penalty\nedges: sum of log-probs so far; blue = kept, grey = pruned, green = finished"
    )


class _Node(NamedTuple):
    """One candidate of one step, placed: where its parent and it are drawn, and in which colour."""

    parent_xy: tuple[float, float]
    xy: tuple[float, float]
    candidate: dict  # a trace entry: "token", "score", "parent", "beam" (None = pruned), "ends"
    color: str
    on_best: bool
    depth: int  # its step: how many tokens its path has


def _tree_nodes(steps, best_tokens: tuple[int, ...]) -> Iterator[_Node]:
    """Place every candidate: x is its step, and each step's candidates are stacked around y = 0."""
    nodes = {(): (0.0, 0.0)}  # path of generated tokens -> (x, y); the root is the prompt
    beams = {0: ()}  # beam index -> its path, for the step being placed
    for s, step in enumerate(steps, start=1):
        # order the candidates by their parent's height, then by score, so that edges seldom cross
        cands = sorted(step["candidates"], key=lambda c: (-nodes[beams[c["parent"]]][1], -c["score"]))
        next_beams = {}
        for row, c in enumerate(cands):
            parent = beams[c["parent"]]
            path = (*parent, c["token"])
            nodes[path] = (float(s), (len(cands) - 1) / 2 - row)
            on_best = best_tokens[: len(path)] == path
            yield _Node(nodes[parent], nodes[path], c, _node_color(c, on_best), on_best, s)
            if c["beam"] is not None:
                next_beams[c["beam"]] = path
        beams = next_beams


def _node_color(candidate, on_best: bool) -> str:
    if on_best:
        return CHOSEN_COLOR
    if candidate["ends"]:
        return FINISHED_COLOR
    return KEPT_COLOR if candidate["beam"] is not None else REMOVED_COLOR


def _draw_node(ax, node: _Node, tokenizer) -> None:
    """The edge from the parent, labelled with the score so far, and the token in a box."""
    (px, py), (x, y), c = node.parent_xy, node.xy, node.candidate
    ax.plot([px, x], [py, y], color=node.color, lw=1.8 if node.on_best else 0.8, zorder=1)
    score_xy = (px + 0.6 * (x - px), py + 0.6 * (y - py))  # nearer the child, where edges have spread out
    plate = dict(boxstyle="square,pad=0.05", fc="white", ec="none", alpha=0.85)  # lifts it off the lines
    ax.text(*score_xy, f"{c['score']:.1f}", fontsize=8, color=node.color, ha="center", va="center", zorder=3,
            bbox=plate)
    text = token_label(tokenizer, c["token"]) if tokenizer is not None else str(c["token"])
    box = dict(boxstyle="round,pad=0.25", fc="white", ec=node.color, lw=0.8)
    ax.text(
        x, y, text, fontsize=9, ha="center", va="center", color=node.color, gid="node", zorder=4, bbox=box
    )


def _draw_prompt(ax, prompt_ids, tokenizer) -> None:
    """The root: the end of the prompt (its last 11 characters), or the word "prompt" without a tokenizer."""
    prompt = "".join(token_label(tokenizer, i) for i in prompt_ids) if tokenizer else "prompt"
    text = prompt if len(prompt) <= 12 else "…" + prompt[-11:]
    box = dict(boxstyle="round,pad=0.3", fc="0.92", ec="0.5")
    ax.text(0, 0, text, fontsize=9, ha="center", va="center", gid="node", bbox=box)


def _label_steps(ax, n_steps: int) -> None:
    """One x tick per column; no y axis, since a node's height only keeps the edges apart."""
    ax.set_xlim(-0.6, n_steps + 0.6)
    ax.set_xticks(range(n_steps + 1), ["prompt"] + [f"step {s}" for s in range(1, n_steps + 1)], fontsize=8)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
