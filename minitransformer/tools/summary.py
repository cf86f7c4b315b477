"""Counting parameters and printing a model's layout.

Parameter counts are where popular write-ups often go wrong (tied embeddings counted twice,
position tables forgotten). `count_parameters` counts each tensor once, however many modules
share it, which is also what `torch.nn.Module.parameters()` yields.
"""

from __future__ import annotations

from torch import nn


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters; a tensor shared by two modules (weight tying) counts once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def summary(model: nn.Module, depth: int = 1) -> str:
    """A table of the model's children (to `depth` levels) with their parameter counts.

    Shared tensors are credited to the first module that owns them, so the rows add up to the total.
    """
    seen: set[int] = set()
    rows = []

    def walk(module: nn.Module, prefix: str, level: int):
        for name, child in module.named_children():
            full = f"{prefix}{name}"
            if level < depth and any(True for _ in child.children()):
                walk(child, full + ".", level + 1)
                continue
            n = 0
            for p in child.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    n += p.numel()
            rows.append((full, type(child).__name__, n))

    walk(model, "", 0)
    total = count_parameters(model)
    width = max([len(r[0]) for r in rows] + [6])
    kind_width = max([len(r[1]) for r in rows] + [4])
    lines = [f"{type(model).__name__}", f"{'module':<{width}}  {'type':<{kind_width}} {'params':>12}"]
    lines += [f"{name:<{width}}  {kind:<{kind_width}} {n:>12,}" for name, kind, n in rows]
    lines.append(f"{'total':<{width}}  {'':<{kind_width}} {total:>12,}")
    config = getattr(model, "config", None)
    if config is not None:
        lines.append(
            f"d_model={config.d_model} n_heads={config.n_heads} n_layers={config.n_layers} "
            f"d_ff={config.d_ff} max_len={config.max_len} vocab_size={config.vocab_size}"
        )
    return "\n".join(lines)
