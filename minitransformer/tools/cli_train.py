"""`minitransformer train`: a preset, the options that override it, and where the checkpoints go.

Everything that can be checked before training is: --out (and --best-out) must be writable and the
disk must hold a checkpoint, so a bad path is reported at once, not after minutes of training.
Without --out the run is saved to runs/PRESET.safetensors (never over an earlier run's file), or,
with --resume, back into the resumed file. Ctrl-C stops after the step under way, saves a
checkpoint at that step, and prints the command that continues it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..errors import ConfigError
from ..training import TrainConfig, Trainer, distributed, pick_device
from . import cli_stages as stages
from . import presets
from .cli_options import PROG, about

# options that override a field of the same name in the preset's TransformerConfig / TrainConfig
MODEL_OPTIONS = ("d_model", "n_heads", "n_layers", "max_len", "dropout")
TRAIN_OPTIONS = ("steps", "lr", "warmup_steps", "eval_interval", "eval_batches", "grad_accum", "seed")
TRAIN_OPTIONS += ("precision", "device", "time_budget", "lr_schedule", "optimizer")


def train(args, argv) -> int:
    start = command_start()  # a --time-budget counts the start-up and set-up too: the command ends within it
    _check_options(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    plan = stages.plan(args)  # most presets: one stage
    for stage in plan:
        status = _train_stage(stages.stage_args(args, stage, plan), argv, start)
        if status:
            return status
        start = time.perf_counter()
    # under torchrun: leave the group. (After an error we just exit: torchrun then stops the others.)
    distributed.cleanup()
    return 0


def _train_stage(args, argv, start: float) -> int:
    """Train one stage of the preset (most have one), from random weights, --init-from or --resume."""
    # the same command line builds the same initial weights (in every process, under torchrun)
    torch.manual_seed(TrainConfig.seed if args.seed is None else args.seed)
    # --batch-size is per process; the task draws the global batch and the trainer splits it
    per_process = args.batch_size or presets.PRESETS[args.preset].batch_size
    overrides = {k: getattr(args, k) for k in MODEL_OPTIONS if getattr(args, k) is not None}
    device = None if args.device is None else {"device": args.device}  # (where "auto" precision is tried)
    model, tokenizer, task, cfg = presets.build(
        args.preset, overrides, device, per_process * distributed.world_size(), args.corpus, args.stage
    )
    trainer = _trainer(args, model, tokenizer, task, _train_config(args, cfg))
    _check_room(args.out, trainer.model)
    _announce(args, trainer, per_process)
    trainer.started = start
    try:
        history = trainer.fit()
    except KeyboardInterrupt:
        return _stopped(trainer, args, argv)
    if args.half:
        trainer.save(args.out, dtype=torch.float16)
    distributed.barrier()  # under torchrun: wait for rank 0's checkpoints (the next stage starts from them)
    run = {"preset": args.preset} | ({"stage": args.stage} if args.stages > 1 else {})
    run |= {"steps": trainer.step, "seconds": round(time.perf_counter() - start, 1)}
    final = {k: round(v, 4) for k, v in history[-1].items() if k.startswith("val_")}
    log(json.dumps(run | {"threads": torch.get_num_threads()} | final | {"out": str(args.out)}))
    return 0


def command_start() -> float:
    """When this command began, as a time.perf_counter() value: the process's start where the process is
    the command (`python -m minitransformer`, or the `minitransformer` script), else now (main() called
    from Python, e.g. in a notebook or a test)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if (spec is not None and spec.name == "minitransformer.__main__") or Path(sys.argv[0]).name == PROG:
        return process_start()
    return time.perf_counter()


def process_start() -> float:
    """The time.perf_counter() value at which this process started (on Linux, from /proc: the interpreter's
    start and the imports count too), or now where that cannot be read."""
    try:
        with open("/proc/self/stat") as f:  # field 22, after the name in parentheses: start, in clock ticks
            ticks = int(f.read().rpartition(")")[2].split()[19])
        with open("/proc/uptime") as f:
            age = float(f.read().split()[0]) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.perf_counter()
    return time.perf_counter() - min(max(age, 0.0), 600.0)


def _announce(args, trainer: Trainer, per_process: int) -> None:
    """One line: what trains, with which settings, on how many processes, saved where."""
    model, processes = trainer.model, distributed.world_size()
    where = args.out if args.out_chosen else f"{args.out} (choose another file with --out)"
    source = args.resume or args.init_from or "random weights"
    stage = f" (stage {args.stage} of {args.stages}, from {source})" if args.stages > 1 else ""
    log(
        f"training {args.preset}{stage}: {type(model).__name__} with {model.num_parameters():,} parameters, "
        f"{_settings(model.config, trainer.cfg)}; {processes} process(es), global batch "
        f"{per_process * processes * trainer.cfg.grad_accum}; saving to {where}",
        file=sys.stderr,
    )


def _check_options(args) -> None:
    """What can be refused before anything is built: the output paths and float16 without CUDA."""
    args.out_chosen = args.out is not None
    if args.out is None:
        args.out = args.resume or _default_out(args.preset)
    require_writable("--out", args.out)
    if args.best_out is not None:
        require_writable("--best-out", args.best_out)
    if args.precision == "float16" and pick_device(args.device or "auto").type != "cuda":
        raise ConfigError(
            f"argument --precision: float16 needs a CUDA GPU, and this run trains on "
            f"{pick_device(args.device or 'auto').type}: use --precision bfloat16 or float32"
        )


def _default_out(preset: str) -> str:
    """runs/PRESET.safetensors, or runs/PRESET-2.safetensors, ... : never an earlier run's file (nor the
    stage-1 file of a run stopped in its first stage)."""
    path, n = Path("runs") / f"{preset}.safetensors", 1
    while path.exists() or Path(stages.stage_path(path, 1)).exists():
        n += 1
        path = Path("runs") / f"{preset}-{n}.safetensors"
    return str(path)


def require_writable(flag: str, path) -> None:
    """A checkpoint can be saved at `path`: not a folder, below folders (not files), where we may write.

    Nothing is left behind: the folders a save would create are not created yet; a test file is
    created in the nearest existing folder and removed.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            f"argument {flag}: {str(path)!r} is a folder; give a file path such as "
            f"{str(path / 'run.safetensors')!r}"
        )
    folder = next(p for p in path.absolute().parents if p.exists())
    if not folder.is_dir():
        raise ConfigError(
            f"argument {flag}: cannot save to {str(path)!r}: {str(folder)!r} is a file, not a folder"
        )
    if path.exists() and not path.is_file():  # a save replaces only a regular file (files.py)
        raise ConfigError(f"argument {flag}: {str(path)!r} is not a regular file; give a checkpoint path")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".minitransformer-probe-"):
            pass  # created and removed, as a save creates a temporary file there first
    except OSError as e:
        raise ConfigError(
            f"argument {flag}: cannot save to {str(path)!r}: {e.strerror} in "
            f"{str(folder)!r}; choose a folder you may write to"
        ) from None


def _check_room(path, model) -> None:
    """The disk must hold a checkpoint: float32 weights plus AdamW's two moments per weight."""
    needed = 3 * 4 * sum(p.numel() for p in model.parameters())
    folder = next(p for p in Path(path).absolute().parents if p.exists())
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise ConfigError(
            f"argument --out: {str(folder)!r} has {free / 2**20:.1f} MiB free, and a "
            f"checkpoint of this model takes about {needed / 2**20:.1f} MiB"
        )


def _train_config(args, cfg: TrainConfig) -> TrainConfig:
    """The preset's TrainConfig with the options given on the command line (None = keep the preset's)."""
    changes = {k: getattr(args, k) for k in TRAIN_OPTIONS}
    changes |= {
        "compile": args.compile or None,
        "checkpoint_path": args.out,
        "best_path": args.best_out,
        "progress": False if args.no_progress else None,
    }
    return presets.replace_train(cfg, **changes)


def _trainer(args, model, tokenizer, task, cfg: TrainConfig) -> Trainer:
    """A new run, a fine-tuning run (--init-from) or the continuation of a saved one (--resume)."""
    if args.resume:
        with about("--resume"):
            trainer = Trainer.resume(args.resume, task, cfg)
            presets.require_same_recipe(
                "resume", args.resume, trainer.model, trainer.tokenizer, model, tokenizer
            )
        if trainer.step >= trainer.cfg.steps:
            raise ConfigError(
                f"argument --steps: the run in {str(args.resume)!r} has already reached step {trainer.step}, "
                f"and --steps is {trainer.cfg.steps}; give a larger --steps (it counts the steps trained)"
            )
        used, budget = (trainer.history or [{}])[-1].get("time", 0.0), trainer.cfg.time_budget
        if budget is not None and used >= budget:
            raise ConfigError(
                f"argument --time-budget: the run in {str(args.resume)!r} has already used {used:.0f} s, and "
                f"--time-budget is {budget:g}; give a larger --time-budget (it counts the seconds trained)"
            )
        return trainer
    _check_freeze_layers(args, model)
    if args.init_from:
        with about("--init-from"):
            model = presets.init_from(args.init_from, model, tokenizer, args.freeze_layers)
    return Trainer(model, task, cfg, tokenizer)


def _check_freeze_layers(args, model) -> None:
    """--freeze-layers is for fine-tuning (--init-from), and at most the model's number of blocks."""
    if args.freeze_layers and not args.init_from:
        raise ConfigError("argument --freeze-layers: freezes pretrained layers, so it needs --init-from")
    blocks = len(getattr(model, "blocks", []))
    if args.freeze_layers > blocks:
        raise ConfigError(
            f"argument --freeze-layers: must be in [0, {blocks}] (the model's blocks), "
            f"got {args.freeze_layers}"
        )


def _stopped(trainer: Trainer, args, argv) -> int:
    """After Ctrl-C: save the run at the step it reached and say how to continue it; exit status 130."""
    out, more = args.out, ["--stage", str(args.stage), "--out", args.final_out] if args.stages > 1 else []
    if not trainer.interrupted:  # a second Ctrl-C, or several processes: stopped mid-step, nothing to save
        log(
            f"{PROG}: stopped during step {trainer.step + 1}; not saved ({out} keeps the last evaluation's "
            "checkpoint, if one was written)",
            file=sys.stderr,
        )
        return 130
    trainer.save(out)
    log(
        f"{PROG}: interrupted: saved step {trainer.step} of {trainer.cfg.steps} to {out}; continue with: "
        f"{resume_command(argv, out, more)}",
        file=sys.stderr,
    )
    return 130


def resume_command(argv, out, more=()) -> str:
    """The command line that continues this run from `out`: the same options, with --resume instead of
    --init-from (the checkpoint holds the weights now) and of --out (a resumed run saves to its file)."""
    dropped, kept, args = ("--resume", "--init-from", "--out"), [], iter(argv)
    for arg in args:
        if arg in dropped:
            next(args, None)  # and its value
        elif arg.split("=", 1)[0] not in dropped:
            kept.append(arg)
    return shlex.join(["python", "-m", "minitransformer", *kept, "--resume", str(out), *more])


def log(*args, **kwargs):
    """print, from one process only (rank 0) when torchrun started several."""
    if distributed.is_main():
        print(*args, **kwargs)


def _settings(config, cfg) -> str:
    """The settings this run really uses (the preset's, with the command line's overrides)."""
    model = {k: getattr(config, k) for k in MODEL_OPTIONS}
    train = {k: getattr(cfg, k) for k in ("steps", "lr", "warmup_steps", "precision", "optimizer")}
    train |= {"time_budget": cfg.time_budget} if cfg.time_budget else {}
    return ", ".join(f"{k}={v}" for k, v in (model | train).items())
