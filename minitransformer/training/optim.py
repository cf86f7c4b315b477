"""The optimizer and its schedule: AdamW (or Muon with AdamW), linear warmup, then a decay.

    lr_at(step, cfg)       warmup_steps of linear growth to lr, then cosine (or linear) decay to min_lr
    TimeBudget             a run with a time budget: the share of it used, and whether one more step fits
    param_groups(model)    weight decay on the matrices of linear layers only
    adamw(groups)          torch's AdamW, fused into one kernel where this torch has it
    build_optimizer(m, c)  what cfg.optimizer asks for: AdamW, or Muon for the hidden matrices + AdamW

Notebook 07 plots the schedule and asks the reader to rewrite `lr_at`.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from ..errors import ConfigError
from .config import TrainConfig
from .tying import tied_weights


def lr_at(step: int, cfg: TrainConfig, progress: float | None = None) -> float:
    """Linear warmup to cfg.lr over warmup_steps, then cfg.lr_schedule's decay to min_lr at cfg.steps.

    progress: the share of a time budget used (TimeBudget.progress); the decay then follows the larger
    of the two shares, so it ends when the time runs out, however fast or slow the machine is.
    """
    min_lr = cfg.lr / 10 if cfg.min_lr is None else cfg.min_lr
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    done = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    done = min(1.0, done if progress is None else max(done, progress))
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "linear":
        return cfg.lr + (min_lr - cfg.lr) * done
    return min_lr + 0.5 * (cfg.lr - min_lr) * (1 + math.cos(math.pi * done))


class TimeBudget:
    """The clock of a run with cfg.time_budget: the final evaluation and checkpoint must fit inside it.

    They are reserved at the end: as long as they took when the run last did them, or, before that, as
    long as eval_batches forward passes, each counted as half a training step (it is about a third: no
    backward pass, no update), with a safety margin. The first step is left out of the step time once
    a second one is measured: it pays one-time costs (allocations, kernel choice). `used`: seconds spent
    before this clock started (a resumed run's earlier time).
    """

    SAFETY = 1.5  # the machine may slow down between the measurement and the end
    FORWARD_SHARE = 0.5  # an evaluation batch, in training steps

    def __init__(self, seconds: float, eval_batches: int, used: float = 0.0, started: float | None = None):
        self.seconds, self.eval_batches = seconds, eval_batches
        self.start = (time.perf_counter() if started is None else started) - used
        self.step_seconds = None  # one training step, a running average
        self.finish_seconds = None  # the last evaluation and checkpoint, as measured
        self.steps_timed, self.done = 0, 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def stepped(self, seconds: float) -> None:
        """A training step took `seconds`: update the running average."""
        self.steps_timed += 1
        old = self.step_seconds
        self.step_seconds = seconds if self.steps_timed <= 2 else 0.9 * old + 0.1 * seconds

    def reserve(self) -> float:
        """Seconds kept for the final evaluation and checkpoint."""
        finish = self.finish_seconds
        if finish is None:
            finish = self.eval_batches * self.FORWARD_SHARE * (self.step_seconds or 0.0)
        return self.SAFETY * finish

    def progress(self) -> float:
        """The share of the training time used, in [0, 1]: 1 when only the reserve is left. It never goes
        back, even when a new measurement of the evaluation shrinks the reserve."""
        share = min(1.0, self.elapsed() / max(1e-9, self.seconds - self.reserve()))
        self.done = max(self.done, share)
        return self.done

    def room_for_a_step(self) -> bool:
        """Whether one more step and the reserve fit; always for the first two steps: a run needs a step to
        evaluate, and the clock a second one to know how long a step takes (the first one is slow)."""
        if self.steps_timed < 2:
            return True
        return self.elapsed() + self.step_seconds + self.reserve() < self.seconds


def adamw(params, **settings) -> torch.optim.AdamW:
    """AdamW as one fused kernel where this torch has it for these parameters (CPU and CUDA since
    torch 2.4), else the multi-tensor (foreach) version. Same update rule, faster: the fused kernel
    reads the weights and moments once per step, where foreach makes a pass for each operation."""
    params = list(params)  # tensors or param-group dicts; each try gets its own copies of the dicts
    fresh = lambda: [dict(p) if isinstance(p, dict) else p for p in params]
    try:
        return torch.optim.AdamW(fresh(), fused=True, **settings)
    except (RuntimeError, ValueError):  # an older torch, or a device without the fused kernel
        return torch.optim.AdamW(fresh(), foreach=True, **settings)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on linear weight matrices only; biases, norms and embeddings get none.

    A tied matrix (the output layer's weight that is also the token embedding) counts as an embedding.
    """
    tied = {name for group in tied_weights(model) for name in group}
    decay, no_decay = [], []
    for name, p in model.named_parameters():  # a tied tensor once, under its first name
        if not p.requires_grad:
            continue
        owner, _, leaf = name.rpartition(".")
        is_matrix = isinstance(model.get_submodule(owner), nn.Linear) and leaf == "weight"
        (decay if is_matrix and name not in tied else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def muon_param_groups(model: nn.Module, weight_decay: float) -> tuple[list[dict], list[dict]]:
    """(Muon's groups, AdamW's groups): Muon takes the hidden layers' weight matrices; AdamW the
    embeddings, norms, biases and the output layer `lm_head` (as Muon's authors do: it maps to the
    vocabulary, and is no hidden layer)."""
    decay, no_decay = param_groups(model, weight_decay)
    heads = {id(m.weight) for name, m in model.named_modules() if name.rpartition(".")[2] == "lm_head"}
    hidden = [p for p in decay["params"] if id(p) not in heads]
    output = [p for p in decay["params"] if id(p) in heads]
    return [{"params": hidden, "weight_decay": weight_decay}], [
        {"params": output, "weight_decay": weight_decay},
        no_decay,
    ]


def build_optimizer(model: nn.Module, cfg: TrainConfig):
    """cfg.optimizer="adamw": AdamW for every parameter. "muon": torch.optim.Muon for the hidden weight
    matrices, AdamW for the rest, stepping as one (MuonWithAdamW).

    Muon scales its update with Moonshot's rule (adjust_lr_fn="match_rms_adamw": the update's RMS
    matches AdamW's), so one lr and weight decay serve both (Liu et al. 2025, "Muon is Scalable for LLM
    Training", arXiv:2502.16982).
    """
    if cfg.optimizer == "adamw":
        return adamw(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    muon_class = getattr(torch.optim, "Muon", None)
    if muon_class is None:
        raise ConfigError(
            f"optimizer='muon' needs torch.optim.Muon, which this torch ({torch.__version__}) lacks "
            "(added in torch 2.9); use optimizer='adamw' or a newer torch"
        )
    hidden, rest = muon_param_groups(model, cfg.weight_decay)
    muon = muon_class(hidden, lr=cfg.lr, weight_decay=cfg.weight_decay, adjust_lr_fn="match_rms_adamw")
    return MuonWithAdamW(muon, adamw(rest, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)))


class MuonWithAdamW:
    """Two torch optimizers that step as one, with one state dict (numbered as one optimizer's)."""

    def __init__(self, muon, adamw):
        self.optimizers = (muon, adamw)

    @property
    def param_groups(self) -> list[dict]:  # the trainer sets every group's lr
        return [g for opt in self.optimizers for g in opt.param_groups]

    def step(self):
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self, set_to_none: bool = True):
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        state, groups, offset = {}, [], 0
        for opt in self.optimizers:
            own = opt.state_dict()
            state |= {offset + i: s for i, s in own["state"].items()}
            groups += [g | {"params": [offset + i for i in g["params"]]} for g in own["param_groups"]]
            offset += sum(len(g["params"]) for g in own["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state: dict):
        groups, offset = list(state["param_groups"]), 0
        for opt in self.optimizers:
            own, groups = groups[: len(opt.param_groups)], groups[len(opt.param_groups) :]
            ids = [i for g in own for i in g["params"]]
            opt.load_state_dict(
                {
                    "state": {i - offset: state["state"][i] for i in ids if i in state["state"]},
                    "param_groups": [g | {"params": [i - offset for i in g["params"]]} for g in own],
                }
            )
            offset += len(ids)
