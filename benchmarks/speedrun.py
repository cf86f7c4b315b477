"""The five-minute speedrun: the `shakespeare-char-speedrun` preset, each of its choices undone in turn,
and nanoGPT's CPU recipe, every run given the same wall-time budget on the same machine.

    python -m benchmarks --only speedrun                  # the section: every variant, 300 s each
    python -m benchmarks.speedrun --only speedrun,adamw   # some variants; --budget 60 for a quick look
    python -m benchmarks.speedrun --smoke                 # seconds; the numbers mean nothing

Each variant trains in a fresh process, so that no run inherits another's memory or threads, and its
budget counts the process's set-up (reading and tokenising the corpus, building the model) as the
command line does: `speedrun` itself IS the command line, `python -m minitransformer train --preset
shakespeare-char-speedrun`, timed from outside. Every variant is then scored the same way:
`clm_validation_loss` over the whole validation split (consecutive windows of the model's context),
in float32. "nanogpt-cpu" is nanoGPT's README CPU settings (4 layers, 4 heads, d_model 128, context
64, batch 12, lr 1e-3 with warm-up and cosine decay to 1e-4, dropout 0, float32, AdamW) in our
trainer, its schedule stretched over the same budget. A variant that changes the context keeps the
tokens per step (batch x context) of the preset, so that only the context differs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from .common import fmt, target

NAME = "speedrun"
TITLE = "Five-minute speedrun on Tiny Shakespeare: the preset, its ablations and nanoGPT's CPU recipe"
PRESET = "shakespeare-char-speedrun"
BUDGET, SMOKE_BUDGET = 300.0, 2.0
TARGET, STRETCH = 1.60, 1.55
NANOGPT = dict(
    model=dict(d_model=128, n_heads=4, n_layers=4, max_len=64, dropout=0.0, tie_weights=True),
    train=dict(lr=1e-3, min_lr=1e-4, warmup_steps=100, lr_schedule="cosine", optimizer="adamw",
               precision="float32", eval_interval=250, eval_batches=20),
    batch_size=12,
)
# name: (what changes, model overrides, train overrides, batch size or None); "speedrun" is the preset
VARIANTS = {
    "speedrun": ("the preset as it is", {}, {}, None),
    "precision": ("bfloat16 autocast off (or on, where the preset runs float32)", {}, {"precision": "flip"}, None),
    "adamw": ("AdamW for every weight, no Muon", {}, {"optimizer": "adamw"}, None),
    "cosine": ("cosine decay to lr/10 instead of linear to 0", {}, {"lr_schedule": "cosine", "min_lr": None}, None),
    "constant-lr": ("no decay: constant lr after the warm-up", {}, {"lr_schedule": "constant"}, None),
    "untied": ("separate output matrix (no weight tying)", {"tie_weights": False}, {}, None),
    "dropout": ("dropout 0.1", {"dropout": 0.1}, {}, None),
    "narrower": ("d_model 128", {"d_model": 128}, {}, None),
    "wider": ("d_model 256", {"d_model": 256}, {}, None),
    "deeper": ("6 layers", {"n_layers": 6}, {}, None),
    "context-128": ("context 128, batch halved", {"max_len": 128}, {}, 0.5),
    "context-256": ("context 256, batch a quarter", {"max_len": 256}, {}, 0.25),
    "nanogpt-cpu": ("nanoGPT's CPU recipe in our trainer", NANOGPT["model"], NANOGPT["train"], "nanogpt"),
}
SMOKE_VARIANTS = ("speedrun", "adamw", "nanogpt-cpu")
SMOKE_MODEL = dict(d_model=32, n_heads=2, n_layers=1, max_len=32)  # on top of every variant's shape


def settings(name: str, budget: float, smoke: bool) -> tuple[dict, dict, int]:
    """(model overrides, train overrides, batch size) of variant `name` over the preset."""
    from minitransformer.tools.presets import PRESETS, bfloat16_is_faster

    _, model, train, batch = VARIANTS[name]
    preset = PRESETS[PRESET]
    model, train = dict(model), dict(train)
    if train.get("precision") == "flip":
        train["precision"] = "float32" if bfloat16_is_faster() else "bfloat16"
    if batch == "nanogpt":
        batch_size = NANOGPT["batch_size"]
    else:
        batch_size = round(preset.batch_size * (batch or 1.0))
    train |= {"time_budget": budget, "progress": False, "device": "cpu"}
    if smoke:
        model |= SMOKE_MODEL
        train |= {"eval_batches": 2, "eval_interval": 10**6, "warmup_steps": 2}
        batch_size = 4
    return model, train, batch_size


def train_variant(name: str, budget: float, smoke: bool, out: Path) -> dict:
    """Train variant `name` in this process, as the command line would, and save it to `out`."""
    from minitransformer.tools import presets
    from minitransformer.tools.cli_train import process_start
    from minitransformer.training import Trainer

    # the budget counts the start-up and set-up, as on the command line (in-process, smoke: from here)
    start = time.perf_counter() if smoke else process_start()
    model_overrides, train_overrides, batch_size = settings(name, budget, smoke)
    torch.manual_seed(train_overrides.get("seed", 1337))
    model, tokenizer, task, cfg = presets.build(PRESET, model_overrides, train_overrides, batch_size)
    trainer = Trainer(model, task, cfg, tokenizer)
    trainer.started = start
    trainer.fit()
    trainer.save(out)
    return {"steps": trainer.step, "precision": cfg.precision, "tokens": trainer.step * batch_size * model.config.max_len,
            "train_seconds": time.perf_counter() - start}


def _command(name: str, budget: float, out: Path) -> list[str]:
    """The fresh process that trains variant `name`: the real command line for the preset itself."""
    threads = ["--threads", str(torch.get_num_threads())]
    if name == "speedrun":
        return [sys.executable, "-m", "minitransformer", "train", "--preset", PRESET, "--out", str(out),
                "--time-budget", str(budget), "--no-progress", *threads]
    return [sys.executable, "-m", "benchmarks.speedrun", "--train", name, "--budget", str(budget),
            "--checkpoint", str(out), *threads]


def measure(names, budget: float, smoke: bool) -> dict:
    """{variant: {val_loss, steps, tokens, command_seconds, ...}}: fresh processes, or in-process when smoking."""
    from minitransformer.tools.evaluation import clm_validation_loss
    from minitransformer.training import load_checkpoint

    results, root, val_ids = {}, Path(__file__).resolve().parent.parent, _validation_ids()
    with tempfile.TemporaryDirectory(prefix="minitransformer-speedrun-") as folder:
        for name in names:
            out = Path(folder) / f"{name}.safetensors"
            print(f"[speedrun] {name}: {VARIANTS[name][0]} ...", file=sys.stderr, flush=True)
            start = time.perf_counter()
            if smoke:
                info = train_variant(name, budget, smoke, out)
            else:
                done = subprocess.run(_command(name, budget, out), cwd=root, capture_output=True, text=True,
                                      timeout=budget + 600)
                if done.returncode != 0:
                    raise RuntimeError(f"variant {name!r} failed: {done.stderr[-2000:]}")
                info = {}
            seconds = time.perf_counter() - start
            model, _, state = load_checkpoint(out, return_state=True)
            training = state["training"]
            context, batch = model.config.max_len, settings(name, budget, smoke)[2]
            info = {"steps": training["step"], "tokens": training["step"] * batch * context,
                    "precision": training["train_config"]["precision"]} | info
            with torch.inference_mode():
                windows = 8 if smoke else None
                info["val_loss"] = clm_validation_loss(model.eval(), val_ids, context=context, max_windows=windows)
            info |= {"command_seconds": seconds, "parameters": model.num_parameters()}
            results[name] = info
    return results


def _validation_ids():
    from minitransformer.data import ascii_tokenizer, load_text, train_val_split

    return torch.tensor(ascii_tokenizer().encode(train_val_split(load_text("shakespeare"))[1]))


def run(smoke: bool, names=None, budget: float | None = None) -> dict:
    names = list(names or (SMOKE_VARIANTS if smoke else VARIANTS))
    budget = budget or (SMOKE_BUDGET if smoke else BUDGET)
    results = measure(names, budget, smoke)
    base = results.get("speedrun")
    rows = []
    for name, r in results.items():
        ratio = r["val_loss"] / base["val_loss"] if base else None
        r["loss_ratio_to_speedrun"] = ratio
        rows.append([name, VARIANTS[name][0], r["precision"], f"{r['parameters']:,}", f"{r['steps']:,}",
                     f"{r['tokens']:,}", fmt(r["command_seconds"]), f"{r['val_loss']:.4f}",
                     "" if ratio is None else f"{ratio:.3f}"])
    targets = []
    if base:
        loss, seconds = base["val_loss"], base["command_seconds"]
        targets.append(target(f"speedrun validation loss <= {TARGET} at {budget:g} s", loss, TARGET,
                              f"{loss:.4f}", higher_is_better=False))
        targets.append(target(f"speedrun stretch <= {STRETCH}", loss, STRETCH, f"{loss:.4f}", higher_is_better=False))
        targets.append(target(f"the whole command within {budget:g} s of wall time", seconds, budget,
                              f"{seconds:.1f} s", higher_is_better=False))
        if "nanogpt-cpu" in results:
            other = results["nanogpt-cpu"]["val_loss"]
            targets.append(target("speedrun below nanoGPT's CPU recipe at the same budget", other - loss, 0.0,
                                  f"{loss:.4f} vs {other:.4f}"))
    where = "in this process (smoke)" if smoke else "in a fresh process"
    note = (f"Budget {budget:g} s of wall time per run, set-up and final save included, each run {where} with "
            f"{torch.get_num_threads()} torch thread(s). Validation loss: nats per character, "
            "whole validation split, float32, each model at its own context. Ratio: loss / the speedrun's.")
    return {"title": TITLE, "status": "ok", "note": note,
            "columns": ["variant", "change", "precision", "parameters", "steps", "tokens", "command s",
                        "validation loss", "loss / speedrun's"],
            "rows": rows, "metrics": {name: {k: v for k, v in r.items() if k != "precision" and v is not None}
                                      for name, r in results.items()},
            "targets": targets}


def plot(ax, section):
    metrics = section["metrics"]
    names = list(metrics)
    losses = [metrics[n]["val_loss"] for n in names]
    colors = ["C3" if n == "speedrun" else "C2" if n == "nanogpt-cpu" else "C0" for n in names]
    ax.barh(range(len(names)), losses, color=colors)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(TARGET, color="k", linestyle="--", linewidth=1, label=f"target {TARGET}")
    low = min(losses + [TARGET])
    ax.set_xlim(low - 0.1, max(losses) + 0.05)
    ax.set_xlabel("validation loss at the budget (nats per character)")
    ax.set_title("Speedrun: each choice undone in turn")
    ax.legend(fontsize=8)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speedrun", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, 2 s per run, three variants")
    parser.add_argument("--only", help=f"comma-separated variants, from: {', '.join(VARIANTS)}")
    parser.add_argument("--budget", type=float, help=f"seconds per run (default: {BUDGET:g}; smoke {SMOKE_BUDGET:g})")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, help="write the section's JSON here (default: print it)")
    parser.add_argument("--train", choices=list(VARIANTS), help=argparse.SUPPRESS)  # one child run
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.train:
        print(json.dumps(train_variant(args.train, args.budget or BUDGET, False, args.checkpoint)))
        return 0
    names = args.only.split(",") if args.only else None
    unknown = [n for n in names or [] if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    section = run(args.smoke, names, args.budget)
    text = json.dumps(section, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
