"""The command line: `python -m minitransformer train ...` and `python -m minitransformer generate ...`.

python -m minitransformer train --preset shakespeare-char --out runs/shakespeare-char.safetensors
python -m minitransformer train --preset shakespeare-char --steps 200 --d-model 64   # a quick try
python -m minitransformer train --resume runs/shakespeare-char.safetensors --preset shakespeare-char
python -m minitransformer generate --model shakespeare-char --prompt "ROMEO:" --max-new-tokens 200

torchrun --nproc_per_node=4 -m minitransformer train --preset shakespeare-char   # 4 processes (GPUs)
    --batch-size is per process: the global batch is batch size x processes x grad accumulation.
    See docs/multi_node.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from ..errors import CheckpointError, ConfigError
from ..generation import generate
from ..training import TrainConfig, Trainer, distributed, load_checkpoint, save_checkpoint
from . import presets
from .pretrained import load_model

# options that override a field of the same name in the preset's TransformerConfig / TrainConfig
MODEL_OPTIONS = ("d_model", "n_heads", "n_layers", "max_len", "dropout")
TRAIN_OPTIONS = ("steps", "lr", "warmup_steps", "eval_interval", "eval_batches", "grad_accum", "seed")
TRAIN_OPTIONS += ("precision", "device")
NUMBER_OPTIONS = [
    ("steps", int),
    ("lr", float),
    ("warmup-steps", int),
    ("eval-interval", int),
    ("eval-batches", int),
    ("grad-accum", int),
    ("seed", int),
    ("batch-size", int),
    ("d-model", int),
    ("n-heads", int),
    ("n-layers", int),
    ("max-len", int),
    ("dropout", float),
]


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return {"train": _train, "generate": _generate, "export": _export}[args.command](args)
    except (ConfigError, CheckpointError, FileNotFoundError) as e:
        # what was asked for cannot be done: say why in one line and exit 2, as argparse does for a bad option
        print(f"{parser.prog} {args.command}: error: {e}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m minitransformer", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train_options(sub.add_parser("train", help="train a model from a preset"))
    _add_generate_options(
        sub.add_parser("generate", help="generate text from a bundled model or a checkpoint")
    )
    export = sub.add_parser(
        "export", help="copy a checkpoint's weights, tokenizer and metrics without training state"
    )
    export.add_argument("source")
    export.add_argument("target")
    export.add_argument("--half", action="store_true", help="store weights in float16")
    return parser


def _add_train_options(train: argparse.ArgumentParser):
    train.add_argument("--preset", required=True, choices=sorted(presets.PRESETS))
    train.add_argument("--out", help="checkpoint path (.safetensors); written at every evaluation")
    train.add_argument("--best-out", help="also keep the checkpoint with the lowest validation loss here")
    train.add_argument("--resume", help="continue the run saved in this checkpoint")
    train.add_argument("--init-from", help="fine-tune: start from this checkpoint or bundled model name")
    train.add_argument("--freeze-layers", type=int, default=0, help="fine-tune: freeze the first N blocks")
    for name, kind in NUMBER_OPTIONS:
        train.add_argument(f"--{name}", type=kind)
    train.add_argument("--precision", choices=["float32", "bfloat16", "float16"], help="float16 needs CUDA")
    train.add_argument("--compile", action="store_true", help="torch.compile the model for training")
    train.add_argument("--device", default=None, help="auto (default), cpu, cuda, mps")
    train.add_argument("--corpus", choices=["shakespeare", "python"], help="train on another bundled corpus")
    train.add_argument(
        "--half", action="store_true", help="store the final weights in float16 (half the size)"
    )
    train.add_argument("--no-progress", action="store_true")


def _add_generate_options(gen: argparse.ArgumentParser):
    gen.add_argument("--model", default="shakespeare-char", help="bundled name or checkpoint path")
    gen.add_argument("--prompt", default="\n")
    gen.add_argument("--max-new-tokens", type=int, default=200)
    gen.add_argument("--do-sample", action="store_true")
    gen.add_argument("--temperature", type=float, default=1.0)
    gen.add_argument("--top-k", type=int, default=50)
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--num-beams", type=int, default=1)
    gen.add_argument("--seed", type=int, default=0)


def _export(args) -> int:
    model, tokenizer, state = load_checkpoint(args.source, return_state=True)
    metrics = state["metrics"] | {"step": state["training"].get("step")}
    save_checkpoint(
        args.target, model, tokenizer, metrics=metrics, dtype=torch.float16 if args.half else None
    )
    print(json.dumps({"target": args.target, **metrics}))
    return 0


def _train(args) -> int:
    # the same command line builds the same initial weights (in every process, under torchrun)
    torch.manual_seed(TrainConfig.seed if args.seed is None else args.seed)
    # --batch-size is per process; the task draws the global batch and the trainer splits it
    per_process = args.batch_size or presets.PRESETS[args.preset].batch_size
    overrides = {k: getattr(args, k) for k in MODEL_OPTIONS if getattr(args, k) is not None}
    model, tokenizer, task, cfg = presets.build(
        args.preset, overrides, None, per_process * distributed.world_size(), corpus=args.corpus
    )
    trainer = _trainer(args, model, tokenizer, task, _train_config(args, cfg))
    log(
        f"training {args.preset}: {type(trainer.model).__name__} with {trainer.model.num_parameters():,} "
        f"parameters, {_settings(trainer.model.config, trainer.cfg)}; {distributed.world_size()} process(es), "
        f"global batch {per_process * distributed.world_size() * trainer.cfg.grad_accum}",
        file=sys.stderr,
    )
    start = time.perf_counter()
    history = trainer.fit()
    if args.out and args.half:
        trainer.save(args.out, dtype=torch.float16)
    # under torchrun: wait for rank 0's last checkpoint, then leave the group. (After an error we
    # just exit: torchrun then stops the other processes.)
    distributed.cleanup()
    run = {"preset": args.preset, "steps": trainer.step, "seconds": round(time.perf_counter() - start, 1)}
    final = {k: round(v, 4) for k, v in history[-1].items() if k.startswith("val_")}
    log(json.dumps(run | {"threads": torch.get_num_threads()} | final))
    return 0


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
        trainer = Trainer.resume(args.resume, task, cfg)
        presets.require_same_recipe("resume", args.resume, trainer.model, trainer.tokenizer, model, tokenizer)
        return trainer
    if args.init_from:
        model = presets.init_from(args.init_from, model, tokenizer, args.freeze_layers)
    return Trainer(model, task, cfg, tokenizer)


def log(*args, **kwargs):
    """print, from one process only (rank 0) when torchrun started several."""
    if distributed.is_main():
        print(*args, **kwargs)


def _settings(config, cfg) -> str:
    """The settings this run really uses (the preset's, with the command line's overrides)."""
    model = {k: getattr(config, k) for k in MODEL_OPTIONS}
    train = {k: getattr(cfg, k) for k in ("steps", "lr", "warmup_steps", "precision")}
    return ", ".join(f"{k}={v}" for k, v in (model | train).items())


def _generate(args) -> int:
    model, tokenizer = load_model(args.model)
    ids = torch.tensor([tokenizer.encode(args.prompt)])
    out = generate(
        model,
        ids,
        max_new_tokens=args.max_new_tokens,
        do_sample=args.do_sample,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        num_beams=args.num_beams,
        generator=torch.Generator().manual_seed(args.seed),
    )
    print(tokenizer.decode(out[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
