"""Loss against model size on Tiny Shakespeare: a small scaling-law experiment (notebook 12).

    OMP_NUM_THREADS=1 python -m benchmarks.scaling --out minitransformer/assets/scaling_shakespeare.json
    python -m benchmarks.scaling --smoke --out scaling-smoke.json     # seconds; the numbers mean nothing

Five character-level GPTs, from about 3 thousand to 800 thousand non-embedding parameters, each
trained by the package's Trainer on the same characters in the same order: one seed draws the
batches, so every model sees the same 3,000 batches of 16 windows of 64 characters (3,072,000
characters, about three passes over the training split). One learning-rate recipe for all (peak
2e-3, warm-up, cosine decay to 2e-4), no dropout, float32. Each model is then scored on the whole
validation split (consecutive windows of 64 characters, `evaluation.clm_validation_loss`); during
training, the Trainer's validation loss on 10 fixed batches is kept every 250 steps.

The parameter count N that the fit uses is Kaplan et al. (2020)'s: without the token and position
embeddings. The fit is a straight line through (log N, log L): L = (N_c / N) ** alpha.
As a benchmark section (NAME, TITLE, run, plot) it fits benchmarks/__main__.py; it is not in its
default list because a full run takes about ten minutes of CPU on one core (26 minutes of wall
time when it was recorded, on a shared 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

NAME = "scaling"
TITLE = "Validation loss against parameters: five GPTs on Tiny Shakespeare, same tokens each"
COMMAND = "OMP_NUM_THREADS=1 python -m benchmarks.scaling --out minitransformer/assets/scaling_shakespeare.json"
SIZES = [  # (d_model, n_layers, n_heads): roughly 4x more non-embedding parameters per step
    (16, 1, 2),
    (32, 1, 2),
    (48, 2, 4),
    (64, 4, 4),
    (128, 4, 4),
]
TRAIN = dict(steps=3000, batch_size=16, context=64, lr=2e-3, warmup_steps=100, eval_interval=250, seed=1337)
SMOKE = dict(TRAIN, steps=6, warmup_steps=2, eval_interval=3)


def non_embedding_parameters(model) -> int:
    """Kaplan et al. (2020)'s N: every parameter except the token and position embedding tables."""
    embeddings = {id(p) for p in model.embed.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in embeddings)


def fit_power_law(n, loss) -> tuple[float, float]:
    """Least squares through (log N, log L) -> (alpha, N_c) with L = (N_c / N) ** alpha."""
    xs, ys = [math.log(v) for v in n], [math.log(v) for v in loss]
    x_mean, y_mean = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys)) / sum((x - x_mean) ** 2 for x in xs)
    alpha = -slope
    return alpha, math.exp((y_mean - slope * x_mean) / alpha)  # intercept = alpha * log N_c


def _data(smoke: bool):
    """Tiny Shakespeare as ids: the training split (90%) and the validation split (10%)."""
    import minitransformer as mt
    from minitransformer.data import ascii_tokenizer

    tokenizer = ascii_tokenizer()
    train_text, val_text = mt.train_val_split(mt.load_text("shakespeare"))
    if smoke:
        train_text, val_text = train_text[:20_000], val_text[:2_000]
    return tokenizer, torch.tensor(tokenizer.encode(train_text)), torch.tensor(tokenizer.encode(val_text))


def train_one(shape, settings: dict, data) -> dict:
    """Train one GPT of `shape` = (d_model, n_layers, n_heads) and score it on the validation split."""
    import minitransformer as mt
    from minitransformer.tools.evaluation import clm_validation_loss
    from minitransformer.tools.training_tasks import CausalLMTask

    tokenizer, train_ids, val_ids = data
    d_model, n_layers, n_heads = shape
    torch.manual_seed(settings["seed"])  # the same initial weights for the same shape, run after run
    cfg = mt.TransformerConfig(vocab_size=tokenizer.vocab_size, d_model=d_model, n_layers=n_layers,
                               n_heads=n_heads, max_len=settings["context"], dropout=0.0)
    model = mt.GPT(cfg)
    task = CausalLMTask(train_ids, val_ids, settings["context"], settings["batch_size"])
    train_cfg = mt.TrainConfig(steps=settings["steps"], lr=settings["lr"], warmup_steps=settings["warmup_steps"],
                               eval_interval=settings["eval_interval"], eval_batches=10, seed=settings["seed"],
                               device="cpu", precision="float32", progress=False)
    start = time.perf_counter()
    history = mt.Trainer(model, task, train_cfg, tokenizer).fit()
    seconds = time.perf_counter() - start
    val_loss = clm_validation_loss(model.eval(), val_ids, context=settings["context"])
    tokens_per_step = settings["batch_size"] * settings["context"]
    n = non_embedding_parameters(model)
    return {
        "d_model": d_model, "n_layers": n_layers, "n_heads": n_heads,
        "parameters": model.num_parameters(), "non_embedding_parameters": n,
        "tokens": settings["steps"] * tokens_per_step, "train_flops_6ND": 6 * n * settings["steps"] * tokens_per_step,
        "val_loss": val_loss, "train_seconds": seconds,
        "curve": [[h["step"] * tokens_per_step, h["val_loss"]] for h in history if "val_loss" in h],
    }


def run(smoke: bool) -> dict:
    """Train every size; the result in the benchmark-section format (benchmarks/common.py)."""
    settings = SMOKE if smoke else TRAIN
    data = _data(smoke)
    models = []
    for shape in SIZES:
        models.append(train_one(shape, settings, data))
        m = models[-1]
        print(f"[scaling] d_model={shape[0]} n_layers={shape[1]}: N={m['non_embedding_parameters']:,} "
              f"val_loss={m['val_loss']:.4f} ({m['train_seconds']:.0f} s)", file=sys.stderr, flush=True)
    alpha, n_c = fit_power_law([m["non_embedding_parameters"] for m in models], [m["val_loss"] for m in models])
    rows = [[f"{m['d_model']}/{m['n_layers']}/{m['n_heads']}", f"{m['parameters']:,}",
             f"{m['non_embedding_parameters']:,}", f"{m['val_loss']:.4f}", f"{m['train_seconds']:.0f}"]
            for m in models]
    return {
        "title": TITLE,
        "status": "ok",
        "note": (f"Each model trained on the same {models[0]['tokens']:,} characters (same batches, same order); "
                 f"validation loss in nats per character over the whole validation split. "
                 f"Fit L = (N_c/N)^alpha over non-embedding N: alpha = {alpha:.3f}, N_c = {n_c:.3g}."),
        "columns": ["d_model/n_layers/n_heads", "parameters", "non-embedding N", "validation loss", "seconds"],
        "rows": rows,
        "metrics": {"models": models, "fit": {"alpha": alpha, "n_c": n_c}},
        "settings": settings,
        "targets": [],
    }


def plot(ax, section):
    """Validation loss against non-embedding parameters, log-log, with the fitted line."""
    models, fit = section["metrics"]["models"], section["metrics"]["fit"]
    n = [m["non_embedding_parameters"] for m in models]
    ax.loglog(n, [m["val_loss"] for m in models], "o", label="trained models")
    grid = [min(n) * (max(n) / min(n)) ** (i / 50) for i in range(51)]
    ax.loglog(grid, [(fit["n_c"] / g) ** fit["alpha"] for g in grid], "--",
              label=f"fit: L = (N_c/N)^{fit['alpha']:.3f}")
    ax.set_xlabel("non-embedding parameters N")
    ax.set_ylabel("validation loss (nats per character)")
    ax.set_title("loss against size, same tokens per model")
    ax.legend(fontsize=8)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny data and 6 steps: seconds, for tests")
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    args = parser.parse_args(argv)
    from .common import environment

    env = environment()  # before the runs: how busy the machine was when they started
    start = time.perf_counter()
    section = run(args.smoke)
    section["seconds"] = time.perf_counter() - start
    keep = ("date", "cpu_model", "os_cpu_count", "torch_num_threads", "torch", "minitransformer", "python",
            "load_average_1min", "cpu_busy_before_start")
    report = {"command": COMMAND + (" --smoke" if args.smoke else ""), "smoke": args.smoke,
              "environment": {k: env.get(k) for k in keep}} | section
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} in {section['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
