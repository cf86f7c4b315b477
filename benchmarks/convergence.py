"""bfloat16 training converges like float32: validation loss after 2,000 steps of the small shape.

Two runs of the Trainer on Tiny Shakespeare (characters), identical but for `precision`: the
small shape of the training section (4 layers, 4 heads, d_model 128, context 64, batch 12, no
dropout; nanoGPT's CPU recipe), 2,000 steps, lr 1e-3 with warm-up and cosine decay, the same
seed and so the same batches. Both are then scored in float32 on the same 400 windows spread
evenly over the whole validation split. The wall time of each run is reported too (it includes
no evaluation: the trainer evaluates only at the end).
"""

from __future__ import annotations

import time

import torch

from .common import fmt, target

NAME = "convergence"
TITLE = "bfloat16 vs float32 training: validation loss after 2,000 steps (small shape)"
STEPS, SMOKE_STEPS = 2000, 5
WINDOWS, SMOKE_WINDOWS = 400, 8
MAX_GAP = 0.02
CURVE_POINTS = 100  # training-loss points kept per run, for the plot


def _train(precision: str, steps: int) -> tuple:
    from minitransformer.tools import presets
    from minitransformer.training import Trainer

    model, tokenizer, task, cfg = presets.build(
        "shakespeare-char",
        model_overrides=dict(d_model=128, n_heads=4, n_layers=4, max_len=64, dropout=0.0),
        train_overrides=dict(
            steps=steps, lr=1e-3, warmup_steps=100, eval_interval=steps, eval_batches=1,
            precision=precision, device="cpu", progress=False, seed=1337,
        ),
        batch_size=12,
    )
    start = time.perf_counter()
    trainer = Trainer(model, task, cfg, tokenizer)
    trainer.fit()
    seconds = time.perf_counter() - start
    curve = [(h["step"], h["train_loss"]) for h in trainer.history]
    return model.eval(), task, seconds, curve[:: max(1, len(curve) // CURVE_POINTS)]


def run(smoke: bool) -> dict:
    from minitransformer.tools.evaluation import clm_validation_loss

    steps, windows = (SMOKE_STEPS, SMOKE_WINDOWS) if smoke else (STEPS, WINDOWS)
    rows, losses, seconds, curves = [], {}, {}, {}
    for precision in ("float32", "bfloat16"):
        model, task, seconds[precision], curves[precision] = _train(precision, steps)
        with torch.inference_mode():
            losses[precision] = clm_validation_loss(model, task.ids["val"], max_windows=windows)
        rows.append([precision, steps, fmt(losses[precision], 4), fmt(seconds[precision])])
    gap = abs(losses["bfloat16"] - losses["float32"])
    return {
        "title": TITLE,
        "status": "ok",
        "note": (
            f"Same seed, batches and schedule; validation loss in nats per character on {windows} windows "
            f"of 64 spread over the validation split, scored in float32. |bf16 - fp32| = {gap:.4f}. "
            f"Training time bf16 / fp32: {seconds['bfloat16'] / seconds['float32']:.2f}x."
        ),
        "columns": ["precision", "steps", "validation loss", "training seconds"],
        "rows": rows,
        "metrics": {"val_loss": losses, "train_seconds": seconds, "abs_gap": gap, "train_loss_curve": curves},
        "targets": [
            target(
                f"bf16 validation loss within {MAX_GAP} of fp32 after {STEPS:,} steps (small shape)",
                gap,
                MAX_GAP,
                f"{losses['bfloat16']:.4f} vs {losses['float32']:.4f} (gap {gap:.4f})",
                higher_is_better=False,
            )
        ],
    }


def plot(ax, section):
    metrics = section["metrics"]
    for precision, curve in metrics["train_loss_curve"].items():
        steps, loss = zip(*curve)
        label = f"{precision} (validation {metrics['val_loss'][precision]:.3f})"
        ax.plot(steps, loss, label=label, linestyle="-" if precision == "float32" else "--")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats per character)")
    ax.set_title("bfloat16 vs float32 training, small shape")
    ax.legend(fontsize=7)
