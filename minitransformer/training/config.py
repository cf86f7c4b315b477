"""TrainConfig: every setting of a training run, checked when it is made, and the device it picks.

Notebook 07 builds one by hand; the command line's presets (tools/presets.py) build theirs from a
recipe plus the options given on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..checks import is_number, require_choice, require_int, require_positive
from ..errors import ConfigError, describe

PRECISIONS = ("float32", "bfloat16", "float16")
SCHEDULES = ("cosine", "linear", "constant")  # how the learning rate decays after the warmup
OPTIMIZERS = ("adamw", "muon")


@dataclass
class TrainConfig:
    steps: int = 2000
    lr: float = 1e-3
    min_lr: float | None = None  # end of the decay; None means lr / 10
    warmup_steps: int = 100
    lr_schedule: str = "cosine"  # after the warmup: "cosine" or "linear" decay to min_lr, or "constant"
    optimizer: str = "adamw"  # "muon": Muon for the hidden weight matrices, AdamW for the rest (optim.py)
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
    # seconds of wall time for the whole run, evaluations and the final checkpoint included; the run
    # stops there (or at `steps`, if sooner) and the lr decay follows the share of the time used
    time_budget: float | None = None
    # early stopping: end the run after this many evaluations in a row without a new best val_loss
    patience: int | None = None

    def __post_init__(self):
        for name in ("steps", "eval_interval", "eval_batches", "grad_accum"):
            require_int(name, getattr(self, name), minimum=1)
        require_positive("lr", self.lr)
        require_int("warmup_steps", self.warmup_steps, minimum=0)
        require_choice("precision", self.precision, PRECISIONS)
        require_choice("lr_schedule", self.lr_schedule, SCHEDULES)
        require_choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.min_lr is not None and not (is_number(self.min_lr) and 0 <= self.min_lr <= self.lr):
            raise ConfigError(f"min_lr must be a number in [0, lr={self.lr}], got {describe(self.min_lr)}")
        if self.patience is not None:
            require_int("patience", self.patience, minimum=1)
        if self.time_budget is not None:
            require_positive("time_budget", self.time_budget, hint="seconds, or None for no time limit")
        if self.optimizer == "muon" and self.precision == "float16":
            raise ConfigError(
                "optimizer='muon' does not run with precision='float16' (its gradient scaler drives one "
                "torch optimizer); use precision='bfloat16'"
            )
        if self.grad_clip is not None:
            require_positive("grad_clip", self.grad_clip, hint="or None for no clipping")


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
