"""Weight tying, as the training code sees it: one tensor reachable under two or more names.

A model with `tie_weights=True` reads tokens in and writes them out with one matrix
(`lm_head.weight` is `embed.tokens.weight`). Two places care, and both ask this module rather
than the model's attribute layout: the optimizer (optim.py: the shared matrix is an embedding,
so it gets no weight decay) and checkpoints (checkpoints.py: the file stores it once).
"""

from __future__ import annotations

from torch import nn


def tied_weights(model: nn.Module) -> list[list[str]]:
    """The names of every parameter that has more than one, in registration order (first name first).

    A GPT with tied weights gives [["embed.tokens.weight", "lm_head.weight"]]; an untied one, [].
    """
    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    return [group for group in names.values() if len(group) > 1]
