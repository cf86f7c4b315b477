"""The Trainer: one readable loop for every model and objective (see __init__.py for the outline).

    trainer = Trainer(model, task, TrainConfig(...), tokenizer); trainer.fit(); trainer.history

A task (tools/training_tasks.py, or any object with the same two methods) supplies what differs
between objectives: `batch(split, generator)` and `loss(model, batch) -> (loss, metrics)`.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import asdict

import torch
from torch import nn
from tqdm.auto import tqdm

from ..checks import is_int
from ..errors import CheckpointError, ConfigError, TrainingDivergedError
from . import distributed
from .checkpoints import load_checkpoint, save_checkpoint
from .config import TrainConfig, pick_device
from .optim import TimeBudget, build_optimizer, lr_at


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
        self.model = model.to(self.device)  # the plain model: evaluation and checkpoints use it
        self.task = task
        self.tokenizer = tokenizer
        self.callback = callback  # called with the trainer after every step (e.g. viz.LivePlot)
        self.train_model = distributed.wrap(self.model, self.device)  # DDP under torchrun, else the model
        if self.cfg.compile:
            self.train_model = torch.compile(self.train_model)
        self.optimizer = build_optimizer(model, self.cfg)  # AdamW, or Muon with AdamW
        # float16's narrow range would round small gradients to zero: scale the loss up, the grads back
        # down (a no-op unless precision="float16")
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.cfg.precision == "float16")
        self.generator = torch.Generator().manual_seed(self.cfg.seed)  # draws the training batches
        self.step = 0
        self.history: list[dict] = []  # one entry per step: step, lr, train_loss [, val_loss, metrics]
        self.best_val_loss = math.inf
        self.evals_since_best = 0  # evaluations since the best val_loss so far (cfg.patience)
        self.interrupted = False  # True when Ctrl-C stopped fit() between two steps (see fit)
        self.budget = None  # the clock of the latest fit(): a TimeBudget
        # perf_counter() when the run began, if before fit() (the command line: a budget counts the set-up)
        self.started: float | None = None
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
        with _as_checkpoint_error(path):
            cfg = cfg or TrainConfig(**training["train_config"])
            _freeze(model, training.get("frozen", []))
        trainer = cls(model.train(), task, cfg, tokenizer, callback)
        with _as_checkpoint_error(path):
            trainer._restore(state["optimizer"], training)
        return trainer

    def _restore(self, optimizer_state: dict, training: dict):
        """Put back the optimizer's moments, the RNG states and the step of a saved run."""
        if not is_int(training["step"]) or training["step"] < 0:
            raise ValueError(f"step must be an integer >= 0, got {training['step']!r}")
        self.optimizer.load_state_dict(optimizer_state)
        self.generator.set_state(training["batch_rng"])
        torch.set_rng_state(training["torch_rng"])
        if distributed.rank() > 0:  # the checkpoint holds rank 0's dropout RNG; give the others new streams
            seed = self.cfg.seed + distributed.rank() + training["step"] * distributed.world_size()
            torch.manual_seed(seed)
        if training.get("grad_scaler"):
            self.scaler.load_state_dict(training["grad_scaler"])
        self.step, self.history = training["step"], training.get("history", [])
        for loss in (r["val_loss"] for r in self.history if "val_loss" in r):  # for --best-out, patience
            self._note_eval(loss)

    def fit(self, until: int | None = None) -> list[dict]:
        """Train to cfg.steps or to the end of cfg.time_budget (or stop early after step `until`).

        Ctrl-C finishes the step under way and then raises KeyboardInterrupt with `interrupted` set:
        the weights, optimizer and step agree, so `save` then writes a run that resumes exactly.
        A second Ctrl-C stops at once, mid-step. History's "time" counts the run's seconds, earlier
        fits included (and the set-up, from `self.started` when it is set).
        """
        cfg = self.cfg
        stop = cfg.steps if until is None else min(until, cfg.steps)
        self.model.train()
        self.interrupted = False
        show = cfg.progress and distributed.is_main()  # one progress bar, not one per process
        total = None if cfg.time_budget else cfg.steps  # with a budget, the time decides when it ends
        bar = tqdm(total=total, initial=self.step, disable=not show, desc="training")
        used = self.history[-1].get("time", 0.0) if self.history else 0.0
        started, self.started = self.started, None
        clock = self.budget = TimeBudget(cfg.time_budget or math.inf, cfg.eval_batches, used, started)
        with contextlib.closing(bar), _ctrl_c_between_steps() as ctrl_c:
            while self.step < stop and clock.room_for_a_step() and not self.out_of_patience():
                self._fit_step(bar, clock)
                if ctrl_c() and self.step < stop:
                    self.interrupted = True
                    raise KeyboardInterrupt(f"training stopped by Ctrl-C after step {self.step}")
            if self.history and "val_loss" not in self.history[-1] and self.step < stop:
                self._finish(self.history[-1])  # out of time: the final evaluation and checkpoint
        return self.history

    def _fit_step(self, bar, clock: TimeBudget) -> None:
        """One step of fit: a training step, an evaluation and a checkpoint when due, progress."""
        cfg = self.cfg
        lr = lr_at(self.step, cfg, clock.progress() if cfg.time_budget else None)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        began = time.perf_counter()
        loss = self._train_step()
        clock.stepped(time.perf_counter() - began)
        self.step += 1
        record = {"step": self.step, "lr": lr, "train_loss": loss, "time": clock.elapsed()}
        self.history.append(record)
        if self.step % cfg.eval_interval == 0 or self.step == cfg.steps:
            self._finish(record)
        bar.update(1)
        bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k.endswith("loss")})
        if self.callback is not None:
            self.callback(self)

    def _finish(self, record: dict) -> None:
        """Evaluate into `record` (the latest step's) and write the checkpoints; time both for the budget."""
        began = time.perf_counter()
        record |= self.evaluate()
        record["time"] = self.budget.elapsed()  # (before the save, so that the checkpoint holds it)
        self._checkpoint(record["val_loss"])
        self.budget.finish_seconds = time.perf_counter() - began

    def _checkpoint(self, val_loss):
        if self.cfg.checkpoint_path:
            self.save(self.cfg.checkpoint_path)
        if self._note_eval(val_loss) and self.cfg.best_path:
            self.save(self.cfg.best_path)

    def _note_eval(self, val_loss) -> bool:
        """Count an evaluation for best_val_loss and patience; True if it is a new best."""
        improved, self.best_val_loss = val_loss < self.best_val_loss, min(self.best_val_loss, val_loss)
        self.evals_since_best = 0 if improved else self.evals_since_best + 1
        return improved

    def out_of_patience(self) -> bool:
        """Early stopping: cfg.patience evaluations in a row brought no new best validation loss."""
        return self.cfg.patience is not None and self.evals_since_best >= self.cfg.patience

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
                self._check_finite(mean_loss)
                self.scaler.scale(loss / accum).backward()
            total += mean_loss / accum
        if self.cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)  # skips the step if float16 overflowed to inf
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    def _check_finite(self, loss: float):
        if not math.isfinite(loss):
            raise TrainingDivergedError(
                f"the loss became {loss} at step {self.step + 1} (lr={lr_at(self.step, self.cfg):.2e}); "
                f"try a smaller lr (now {self.cfg.lr}) or more warmup_steps. The last checkpoint "
                f"({self.cfg.checkpoint_path or 'none set'}) is unchanged."
            )

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
        """Write a checkpoint with everything needed to resume this run (from rank 0 only)."""
        if not distributed.is_main():  # every process holds the same weights; rank 0 writes them
            return
        training = {
            "step": self.step,
            "history": self.history,
            "train_config": asdict(self.cfg),
            "batch_rng": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "grad_scaler": self.scaler.state_dict(),  # {} unless float16
            # fine-tuning: frozen weights have no optimizer state, so a resumed run must freeze them too
            "frozen": [name for name, p in self.model.named_parameters() if not p.requires_grad],
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


def _freeze(model, names) -> None:
    """Freeze the parameters a saved run had frozen (before the optimizer is built, which skips them)."""
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"frozen must be a list of parameter names, got {names!r}")
    params = dict(model.named_parameters())
    unknown = sorted(set(names) - set(params))
    if unknown:
        raise ValueError(f"frozen names parameters this model does not have: {unknown[:3]}")
    for name in names:
        params[name].requires_grad_(False)


@contextlib.contextmanager
def _ctrl_c_between_steps():
    """Within: the first Ctrl-C (SIGINT) is only noted, so that the step under way can finish; yields a
    function that says whether it came. A second Ctrl-C raises KeyboardInterrupt at once.

    Only in the main thread (where Python runs signal handlers) of a single process (under torchrun all
    processes must stop at the same step, so they stop at once), and not if SIGINT is ignored.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or distributed.world_size() > 1
        or signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, None)
    ):
        yield lambda: False
        return
    came = []

    def note(signum, frame):
        if came:
            raise KeyboardInterrupt
        came.append(signum)

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield lambda: bool(came)
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _as_checkpoint_error(path):
    """A saved training state that does not fit (a wrong type, a missing entry) is a damaged checkpoint."""
    try:
        yield
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        if isinstance(e, CheckpointError):
            raise
        reason = f"no {e}" if isinstance(e, KeyError) else str(e)
        raise CheckpointError(
            f"{str(path)!r} holds training state this run cannot resume from ({reason})"
        ) from None
