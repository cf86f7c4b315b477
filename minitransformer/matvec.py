"""One-token decoding's matrix-vector products, spread over the CPU's cores.

Generating one token at batch 1 multiplies every weight matrix by a single vector: two flops per
weight read, so the step's speed is how fast the cores can read weights from memory. On the CPUs
we measured, torch runs a float32 `F.linear` with one input row on one core, whatever
`torch.set_num_threads` says: a second thread sped a 124M float32 step up 1.03x before this module,
1.57-1.65x with it (benchmarks/results/bandwidth-threads/).

The fix needs no new kernel. A weight W (out, in) is, with no copy, `parts` blocks of out // parts
rows each, stacked as a batch (P, out // P, in). A batched matmul gives each block its own
thread, so every core reads its share of W at once; the few rows left over (out % parts) take
one small `F.linear`. Each output is the same dot product as before: tests/test_matvec.py checks
the results equal to F.linear's within float32 rounding.

bfloat16 has the opposite problem: torch's kernel for one row converts and multiplies too slowly to
wait on memory (about 9 GB/s of weights per core here). `with compiled():` lets torch.compile write
the product as what it is, one fused loop that reads each bfloat16 weight, widens it and adds
weight x input into a float32 sum: the products alone run about 2x as fast at 124M. It needs a C compiler
and compiles once per process (seconds), so it is opt-in
(`generate --dtype bfloat16-compiled`). Within it, a GPT's blocks go further: compiled_block.py
compiles each block's whole step, products and all, as one function; and where the step has one row,
no padding and no rotary positions, native_step.c does the whole step (blocks and output layer) in
hand-written C instead (compiled(native=False) keeps torch.compile's code, to compare).

Used by the decoding `step`s of attention.py, layers.py and models/gpt.py.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import cache
from typing import NamedTuple

import torch
import torch.nn.functional as F

from . import native_step
from .checks import checked, integer
from .errors import ShapeError, describe

# Small matrices stay whole: waking a second thread costs more than its share of the reading. Measured
# at 2 threads, ms per token: d_model 128 (256 KB matrices) 0.57 split, 0.47 whole; d_model 256 with
# the 768 KB and 1 MB matrices split and the 256 KB one whole, 1.32, against 1.41 all split, 2.27 none.
MIN_SPLIT_BYTES = 512 * 1024
_settings = {"compiled": False, "native": True}


class RowBlocks(NamedTuple):
    """A weight (out, in) as equal row blocks plus the rows left over; both are views of it."""
    blocks: torch.Tensor  # (P, out // P, in)
    rest: torch.Tensor  # (out % P, in)


def _matrix(name, weight):
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ShapeError(f"{name} must be a matrix (out, in), got {describe(weight)}")


@checked(weight=_matrix, parts=integer(minimum=1))
def row_blocks(weight: torch.Tensor, parts: int) -> RowBlocks:
    """weight (out, in) -> RowBlocks of `parts` blocks, without copying."""
    out, d_in = weight.shape
    split = out - out % parts
    return RowBlocks(weight[:split].view(parts, split // parts, d_in), weight[split:])


class Fused(NamedTuple):
    """A bfloat16 weight (out, in) whose products with one row take the compiled loop."""
    weight: torch.Tensor


@contextmanager
def compiled(enabled: bool = True, native: bool = True):
    """Within the block, decoding runs that start multiply bfloat16 weights by compiled code: our own C
    (native_step.c) where it applies and builds, else torch.compile's. native=False: torch.compile's only."""
    before = dict(_settings)
    _settings.update(compiled=bool(enabled), native=bool(native))
    try:
        yield
    finally:
        _settings.update(before)


def compiling(weight: torch.Tensor) -> bool:
    """Whether a decoding run that starts now multiplies `weight` by the compiled loop: a bfloat16
    weight within `compiled()`."""
    return weight.dtype == torch.bfloat16 and _settings["compiled"]


def native() -> bool:
    """Whether compiled steps take native_step.c where it applies: within `compiled()` (native not
    turned off) and with the C library built (the first call builds it)."""
    return _settings["compiled"] and _settings["native"] and native_step.library() is not None


def for_decoding(weight: torch.Tensor, bias: torch.Tensor | None):
    """(weight, bias) as one-token steps should multiply by them: row blocks, one per torch thread,
    where that pays (float32, at least 2 threads, a matrix past MIN_SPLIT_BYTES); the compiled loop
    for bfloat16 within `compiled()`; else unchanged."""
    if compiling(weight):
        return Fused(weight.detach()), bias  # a plain tensor: torch.compile fixes parameters' shapes
    parts = torch.get_num_threads()
    big = weight.numel() * weight.element_size() >= MIN_SPLIT_BYTES
    if parts < 2 or not big or weight.dtype != torch.float32 or not weight.is_contiguous():
        return weight, bias
    return row_blocks(weight, parts), bias


def linear(x: torch.Tensor, weight, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias) where weight is a tensor (out, in) or its RowBlocks.
    x: (..., in) -> (..., out)."""
    if isinstance(weight, Fused):
        if native_step.can_multiply(x, weight.weight, bias) and native():
            return native_step.linear(x.reshape(1, -1), weight.weight, bias).view(*x.shape[:-1], -1)
        return widened_linear(x, weight.weight, bias, _compiled_product())
    if not isinstance(weight, RowBlocks):
        return F.linear(x, weight, bias)
    rows = x.reshape(-1, x.shape[-1])  # (N, in)
    parts = weight.blocks.shape[0]
    y = torch.matmul(rows.expand(parts, *rows.shape), weight.blocks.transpose(1, 2))  # (P, N, out // P)
    y = y.transpose(0, 1).reshape(rows.shape[0], -1)  # (N, P * (out // P)): blocks side by side
    if weight.rest.shape[0]:
        y = torch.cat([y, F.linear(rows, weight.rest)], dim=-1)  # (N, out)
    if bias is not None:
        y = y + bias
    return y.view(*x.shape[:-1], y.shape[-1])


def widened_linear(x, weight, bias, product=None):
    """F.linear(x, weight, bias) with one row by `product` (default widened_product; the compiled loop
    for Fused weights), several rows by torch's kernel: there arithmetic matters again (beams, a batch)."""
    rows = x.reshape(-1, x.shape[-1])  # (N, in)
    if rows.shape[0] != 1:
        return F.linear(x, weight, bias)
    y = (product or widened_product)(rows, weight)  # (1, out)
    y = y if bias is None else y + bias
    return y.view(*x.shape[:-1], y.shape[-1])


def widened_product(x, weight):
    """x (1, in) @ weight.T in float32 arithmetic, rounded once to weight's dtype: -> (1, out).
    Written as a broadcast and a sum, which torch.compile fuses into one loop over the weights."""
    return (weight.float() * x.float()).sum(-1, keepdim=True).T.to(weight.dtype)


@cache
def _compiled_product():
    return torch.compile(widened_product, dynamic=True)  # one loop for every matrix shape
