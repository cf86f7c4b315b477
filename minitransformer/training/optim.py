"""The optimizer and its schedule: AdamW with decoupled weight decay, linear warmup, cosine decay.

    lr_at(step)          warmup_steps of linear growth to lr, then a cosine down to min_lr at steps
    param_groups(model)  weight decay on the matrices of linear layers only
    adamw(groups)        torch's AdamW, fused into one kernel where this torch has it

Notebook 07 plots the schedule and asks the reader to rewrite `lr_at`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import TrainConfig
from .tying import tied_weights


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to cfg.lr over warmup_steps, then cosine decay to min_lr at cfg.steps."""
    min_lr = cfg.lr / 10 if cfg.min_lr is None else cfg.min_lr
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return min_lr + 0.5 * (cfg.lr - min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


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
