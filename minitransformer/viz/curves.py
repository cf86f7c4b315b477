"""Training as pictures: the loss curves (drawn once, or live while a Trainer runs) and the learned embeddings.

Used by notebooks 07 (pre-training and fine-tuning) and 08 (masked LM).
"""

from __future__ import annotations

import torch
from matplotlib.figure import Figure

from ..checks import require_int
from ..errors import ShapeError
from ._common import check_labels, figure_png, in_notebook, new_axes, show_token


def plot_history(history, ax=None):
    """Training and validation loss by step, with the learning rate on a second y axis.

    history: `Trainer.history`, a list of dicts with "step", "train_loss", "lr" and, at
    evaluation steps, "val_loss". Returns the loss axes (the lr axes is `ax.lr_axes`).
    """
    if not history:
        raise ValueError("history is empty: train for at least one step first (trainer.fit())")
    ax = ax if ax is not None else new_axes((7, 3.5))
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
        require_int("every", every, minimum=1, hint="steps between redraws", error=ValueError)
        # A bare Figure, not pyplot's: a notebook would show a pyplot figure a second time.
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
        if not in_notebook():
            return
        from IPython.display import Image, display  # optional: only reached inside a Jupyter kernel

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
    labels = (
        [str(i) for i in range(x.shape[0])] if labels is None else check_labels(labels, x.shape[0], "labels")
    )
    centered = x - x.mean(dim=0)  # (V, C)
    _, singular, vh = torch.linalg.svd(centered, full_matrices=False)
    coords = (centered @ vh[:2].T).numpy()  # (V, 2): coordinates along the two main directions
    explained = (singular**2 / (singular**2).sum())[:2].tolist()
    ax = ax if ax is not None else new_axes((6, 6))
    ax.scatter(coords[:, 0], coords[:, 1], s=8, color="0.7")
    for (px, py), label in zip(coords, labels):
        ax.text(px, py, show_token(label), fontsize=8, ha="center", va="center")
    ax.set_xlabel(f"PC 1 ({explained[0]:.0%} of the variance)")
    ax.set_ylabel(f"PC 2 ({explained[1]:.0%} of the variance)" if len(explained) > 1 else "PC 2")
    ax.set_title("token embeddings, first two principal components")
    return ax
