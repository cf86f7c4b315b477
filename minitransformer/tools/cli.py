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

from . import distributed, presets
from .training import TrainConfig, Trainer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minitransformer", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model from a preset")
    train.add_argument("--preset", required=True, choices=sorted(presets.PRESETS))
    train.add_argument("--out", help="checkpoint path (.safetensors); written at every evaluation")
    train.add_argument("--best-out", help="also keep the checkpoint with the lowest validation loss here")
    train.add_argument("--resume", help="continue the run saved in this checkpoint")
    train.add_argument("--init-from", help="fine-tune: start from this checkpoint or bundled model name")
    train.add_argument("--freeze-layers", type=int, default=0, help="fine-tune: freeze the first N blocks")
    for name, kind in [
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
    ]:
        train.add_argument(f"--{name}", type=kind)
    train.add_argument("--precision", choices=["float32", "bfloat16", "float16"], help="float16 needs CUDA")
    train.add_argument("--compile", action="store_true", help="torch.compile the model for training")
    train.add_argument("--device", default=None, help="auto (default), cpu, cuda, mps")
    train.add_argument("--corpus", choices=["shakespeare", "python"], help="train on another bundled corpus")
    train.add_argument(
        "--half", action="store_true", help="store the final weights in float16 (half the size)"
    )
    train.add_argument("--no-progress", action="store_true")

    gen = sub.add_parser("generate", help="generate text from a bundled model or a checkpoint")
    gen.add_argument("--model", default="shakespeare-char", help="bundled name or checkpoint path")
    gen.add_argument("--prompt", default="\n")
    gen.add_argument("--max-new-tokens", type=int, default=200)
    gen.add_argument("--do-sample", action="store_true")
    gen.add_argument("--temperature", type=float, default=1.0)
    gen.add_argument("--top-k", type=int, default=50)
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--num-beams", type=int, default=1)
    gen.add_argument("--seed", type=int, default=0)

    export = sub.add_parser(
        "export", help="copy a checkpoint's weights, tokenizer and metrics without training state"
    )
    export.add_argument("source")
    export.add_argument("target")
    export.add_argument("--half", action="store_true", help="store weights in float16")

    args = parser.parse_args(argv)
    return {"train": _train, "generate": _generate, "export": _export}[args.command](args)


def _export(args) -> int:
    from .checkpoints import load_checkpoint, save_checkpoint

    model, tokenizer, state = load_checkpoint(args.source, return_state=True)
    metrics = state["metrics"] | {"step": state["training"].get("step")}
    save_checkpoint(
        args.target, model, tokenizer, metrics=metrics, dtype=torch.float16 if args.half else None
    )
    print(json.dumps({"target": args.target, **metrics}))
    return 0


def _train(args) -> int:
    model_over = {
        k: v
        for k, v in dict(
            d_model=args.d_model,
            n_heads=args.n_heads,
            n_layers=args.n_layers,
            max_len=args.max_len,
            dropout=args.dropout,
        ).items()
        if v is not None
    }
    # the same command line builds the same initial weights (in every process, under torchrun)
    torch.manual_seed(TrainConfig.seed if args.seed is None else args.seed)
    # --batch-size is per process; the task draws the global batch and the trainer splits it
    per_process = args.batch_size or presets.PRESETS[args.preset].batch_size
    model, tokenizer, task, cfg = presets.build(
        args.preset, model_over, None, per_process * distributed.world_size(), corpus=args.corpus
    )
    cfg = presets.replace_train(
        cfg,
        steps=args.steps,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        eval_interval=args.eval_interval,
        eval_batches=args.eval_batches,
        grad_accum=args.grad_accum,
        seed=args.seed,
        precision=args.precision,
        compile=args.compile or None,
        device=args.device,
        checkpoint_path=args.out,
        best_path=args.best_out,
        progress=False if args.no_progress else None,
    )
    if args.resume:
        trainer = Trainer.resume(args.resume, task, cfg)
    else:
        if args.init_from:
            model = presets.init_from(args.init_from, model, tokenizer, args.freeze_layers)
        trainer = Trainer(model, task, cfg, tokenizer)
    log(
        f"training {args.preset}: {type(trainer.model).__name__} with {trainer.model.num_parameters():,} "
        f"parameters, {_settings(trainer.model.config, trainer.cfg)}; {distributed.world_size()} process(es), "
        f"global batch {per_process * distributed.world_size() * cfg.grad_accum}",
        file=sys.stderr,
    )
    start = time.perf_counter()
    history = trainer.fit()
    if args.out and args.half:
        trainer.save(args.out, dtype=torch.float16)
    # under torchrun: wait for rank 0's last checkpoint, then leave the group. (After an error we
    # just exit: torchrun then stops the other processes.)
    distributed.cleanup()
    final = {k: round(v, 4) for k, v in history[-1].items() if k.startswith("val_")}
    log(
        json.dumps(
            {
                "preset": args.preset,
                "steps": trainer.step,
                "seconds": round(time.perf_counter() - start, 1),
                "threads": torch.get_num_threads(),
                **final,
            }
        )
    )
    return 0


def log(*args, **kwargs):
    """print, from one process only (rank 0) when torchrun started several."""
    if distributed.is_main():
        print(*args, **kwargs)


def _settings(config, cfg) -> str:
    """The settings this run really uses (the preset's, with the command line's overrides)."""
    model = {k: getattr(config, k) for k in ("d_model", "n_heads", "n_layers", "max_len", "dropout")}
    train = {k: getattr(cfg, k) for k in ("steps", "lr", "warmup_steps", "precision")}
    return ", ".join(f"{k}={v}" for k, v in (model | train).items())


def _generate(args) -> int:
    from .generation import generate
    from .pretrained import load_model

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
