"""One readable training loop for every model and objective.

    for each step:  lr = schedule(step)                  linear warmup, then cosine decay
                    loss = task.loss(model, batch)       CLM, MLM or seq2seq (tasks.py)
                    loss.backward(); clip gradients; AdamW step

AdamW decays only the weight matrices of linear layers: biases, LayerNorm gains and
embeddings are left alone (decaying them only hurts). Every `eval_interval` steps the
validation loss is estimated on fixed batches and, if a path is set, a checkpoint is written
(atomically, see checkpoints.py) with everything needed to resume bit-for-bit on the CPU.

Notebooks read `trainer.history` (a list of dicts) to plot the loss as it falls.

The same loop scales out: under `torchrun --nproc_per_node=N` each process trains on its own
slice of every batch and DistributedDataParallel averages the gradients (distributed.py; the
helpers do nothing in a single process). Optional speed-ups: `compile=True` (torch.compile) and
mixed precision, bfloat16 anywhere it is supported or float16 on CUDA with a gradient scaler.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from . import distributed
from .checkpoints import load_checkpoint, save_checkpoint
from .errors import ConfigError, TrainingDivergedError
from .positional import LearnedPositionalEmbedding

PRECISIONS = ("float32", "bfloat16", "float16")


@dataclass
class TrainConfig:
    steps: int = 2000
    lr: float = 1e-3
    min_lr: float | None = None  # end of the cosine; None means lr / 10
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float | None = 1.0
    grad_accum: int = 1  # micro-batches per optimizer step: emulate a larger batch on a small machine
    eval_interval: int = 250
    eval_batches: int = 20
    seed: int = 1337
    device: str = "auto"  # "auto" picks cuda, then mps, then cpu
    precision: str = "float32"  # "bfloat16" (autocast; fast on CPUs with bf16 matmul); "float16" on CUDA
    compile: bool = False  # torch.compile the model for training: slow to start, faster steps
    checkpoint_path: str | None = None  # the latest state, written at every evaluation (for resuming)
    best_path: str | None = None  # also keep the weights with the lowest validation loss here
    progress: bool = True

    def __post_init__(self):
        for name in ("steps", "eval_interval", "eval_batches", "grad_accum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr!r}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"grad_clip must be > 0 or None, got {self.grad_clip!r}")


def pick_device(device: str = "auto") -> torch.device:
    """ "auto" -> cuda if available, else mps, else cpu; anything else is passed to torch.device."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda', 'mps' or similar, got {device!r}") from None


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to cfg.lr over warmup_steps, then cosine decay to min_lr at cfg.steps."""
    min_lr = cfg.lr / 10 if cfg.min_lr is None else cfg.min_lr
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return min_lr + 0.5 * (cfg.lr - min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


def adamw(params, **settings) -> torch.optim.AdamW:
    """AdamW as one fused kernel where this torch has it for these parameters (CPU and CUDA since
    torch 2.4), else the multi-tensor (foreach) version. Same update rule; on a 2-core CPU the step
    took 0.9 ms instead of 2.5 on the benchmark's small shape, 8 ms instead of 37 on its large one."""
    params = list(params)  # tensors or param-group dicts; each try gets its own copies of the dicts
    fresh = lambda: [dict(p) if isinstance(p, dict) else p for p in params]
    try:
        return torch.optim.AdamW(fresh(), fused=True, **settings)
    except (RuntimeError, ValueError):  # an older torch, or a device without the fused kernel
        return torch.optim.AdamW(fresh(), foreach=True, **settings)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on linear weight matrices only; biases, norms and embeddings get none."""
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            is_matrix = isinstance(module, nn.Linear) and name == "weight"
            is_embedding = isinstance(module, (nn.Embedding, LearnedPositionalEmbedding))
            (decay if is_matrix and not is_embedding and not _is_tied(model, p) else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _is_tied(model, p) -> bool:
    embed = getattr(getattr(model, "embed", None), "tokens", None)
    return embed is not None and p is embed.weight


class Trainer:
    """trainer = Trainer(model, task, TrainConfig(...), tokenizer); trainer.fit(); trainer.history"""

    def __init__(self, model, task, cfg: TrainConfig | None = None, tokenizer=None, callback=None):
        self.cfg = cfg or TrainConfig()
        # under torchrun: join the other processes; on CUDA each one takes its own GPU
        self.device = distributed.setup(pick_device(self.cfg.device))
        if self.cfg.precision == "float16" and self.device.type != "cuda":
            raise ConfigError(
                f"float16 needs a CUDA GPU; use bfloat16 on CPU (training on {self.device.type} here)"
            )
        self.model, self.task, self.tokenizer, self.callback = (
            model.to(self.device),  # the plain model: evaluation and checkpoints use it
            task,
            tokenizer,
            callback,
        )
        self.train_model = distributed.wrap(self.model, self.device)  # DDP under torchrun, else the model
        if self.cfg.compile:
            self.train_model = torch.compile(self.train_model)
        self.optimizer = adamw(
            param_groups(model, self.cfg.weight_decay), lr=self.cfg.lr, betas=(self.cfg.beta1, self.cfg.beta2)
        )
        # float16's narrow range would round small gradients to zero: scale the loss up, the grads back
        # down (a no-op unless precision="float16")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.cfg.precision == "float16")
        self.generator = torch.Generator().manual_seed(self.cfg.seed)  # draws the training batches
        self.step = 0
        self.history: list[dict] = []  # one entry per step: step, lr, train_loss [, val_loss, metrics]
        self.best_val_loss = math.inf
        torch.manual_seed(self.cfg.seed + distributed.rank())  # dropout: its own masks on each process

    @classmethod
    def resume(cls, path, task, cfg: TrainConfig | None = None, callback=None) -> Trainer:
        """Continue a run from its checkpoint: same weights, optimizer moments, RNG states and step."""
        model, tokenizer, state = load_checkpoint(path, return_state=True)
        training = state["training"]
        if "step" not in training or state["optimizer"] is None:
            raise ConfigError(
                f"{str(path)!r} holds no training state to resume from (saved without a trainer?)"
            )
        cfg = cfg or TrainConfig(**training["train_config"])
        trainer = cls(model.train(), task, cfg, tokenizer, callback)
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.generator.set_state(training["batch_rng"])
        torch.set_rng_state(training["torch_rng"])
        if distributed.rank() > 0:  # the checkpoint holds rank 0's dropout RNG; give the others new streams
            torch.manual_seed(cfg.seed + distributed.rank() + training["step"] * distributed.world_size())
        if training.get("grad_scaler"):
            trainer.scaler.load_state_dict(training["grad_scaler"])
        trainer.step, trainer.history = training["step"], training.get("history", [])
        return trainer

    def fit(self, until: int | None = None) -> list[dict]:
        """Train to cfg.steps (or stop early after step `until`, e.g. to resume later)."""
        cfg, model = self.cfg, self.model
        stop = cfg.steps if until is None else min(until, cfg.steps)
        model.train()
        show = cfg.progress and distributed.is_main()  # one progress bar, not one per process
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not show, desc="training")
        start = time.perf_counter()
        while self.step < stop:
            lr = lr_at(self.step, cfg)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            loss = self._train_step()
            self.step += 1
            record = {"step": self.step, "lr": lr, "train_loss": loss, "time": time.perf_counter() - start}
            if self.step % cfg.eval_interval == 0 or self.step == cfg.steps:
                record |= self.evaluate()
            self.history.append(record)
            if "val_loss" in record:
                self._checkpoint(record["val_loss"])
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k.endswith("loss")})
            if self.callback is not None:
                self.callback(self)
        bar.close()
        return self.history

    def _checkpoint(self, val_loss):
        if self.cfg.checkpoint_path:
            self.save(self.cfg.checkpoint_path)
        if val_loss < self.best_val_loss:
            self.best_val_loss = val_loss
            if self.cfg.best_path:
                self.save(self.cfg.best_path)

    def _train_step(self) -> float:
        total, accum = 0.0, self.cfg.grad_accum
        for micro in range(accum):
            # every process draws the same global batch and keeps its own rows of it
            batch = self._to_device(distributed.shard(self.task.batch("train", self.generator)))
            # under DDP, all-reduce the gradients once, after the last micro-batch
            with distributed.sync_gradients(self.train_model, sync=micro == accum - 1):
                with self._autocast():
                    loss, _ = self.task.loss(self.train_model, batch)
                mean_loss = distributed.average(loss.item())  # over processes: all stop together
                if not math.isfinite(mean_loss):
                    raise TrainingDivergedError(
                        f"the loss became {mean_loss} at step {self.step + 1} (lr={lr_at(self.step, self.cfg):.2e}); "
                        f"try a smaller lr (now {self.cfg.lr}) or more warmup_steps. The last checkpoint "
                        f"({self.cfg.checkpoint_path or 'none set'}) is unchanged."
                    )
                self.scaler.scale(loss / accum).backward()
            total += mean_loss / accum
        if self.cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)  # skips the step if float16 overflowed to inf
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Mean validation loss (and task metrics) over eval_batches fixed batches."""
        self.model.eval()
        g = torch.Generator().manual_seed(self.cfg.seed + 1)  # the same val batches every time
        losses, metrics = [], {}
        for _ in range(self.cfg.eval_batches):
            with self._autocast():
                loss, extra = self.task.loss(self.model, self._to_device(self.task.batch("val", g)))
            losses.append(loss.item())
            for k, v in extra.items():
                metrics.setdefault(k, []).append(float(v))
        self.model.train()
        return {"val_loss": sum(losses) / len(losses)} | {
            f"val_{k}": sum(v) / len(v) for k, v in metrics.items()
        }

    def save(self, path, dtype=None):
        if not distributed.is_main():  # every process holds the same weights; rank 0 writes them
            return
        training = {
            "step": self.step,
            "history": self.history,
            "train_config": asdict(self.cfg),
            "batch_rng": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "grad_scaler": self.scaler.state_dict(),  # {} unless float16
        }
        last = self.history[-1] if self.history else {}
        metrics = {k: v for k, v in last.items() if k.startswith("val_")}
        save_checkpoint(
            path,
            self.model,
            self.tokenizer,
            optimizer=self.optimizer,
            training_state=training,
            metrics=metrics,
            dtype=dtype,
        )

    def _autocast(self):
        if self.cfg.precision == "float32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=getattr(torch, self.cfg.precision))

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device) for k, v in batch.items()}
