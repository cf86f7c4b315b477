"""A GPT's bfloat16 one-token step in C (native_step.c), for batch-1 decoding within `matvec.compiled()`.

compiled_block.py lets torch.compile turn a block's tensor expressions into C++. At GPT-2's 124M
shape that step still spends much of its time outside the reading of weights: a Python call into the
compiled function per block (guards, about 70 µs), and torch's loops between the products.
native_step.c is the same arithmetic written out by hand: the blocks, the final LayerNorm and the
output layer in one C call and one OpenMP region per token, so the threads go from one product to the
next with only a barrier between. GPT.step calls `model_step` where it applies: one row, no padding
mask, no rotary positions, bfloat16 throughout (a GPT-2's greedy or sampled decoding); anything else
keeps compiled_block's step. tests/test_native_step.py checks it against the eager bfloat16 step.
The benchmark's numbers: benchmarks/results/bandwidth-threads/ (README, "Near the machine's limit").

The source is compiled once per machine with the system's C compiler ($CC, else cc, gcc or clang) into a cache
folder ($MINITRANSFORMER_CACHE, default ~/.cache/minitransformer), and loaded with ctypes. It runs on
torch's own OpenMP threads (the library loads the libgomp torch has loaded), so `torch.set_num_threads`
applies. Without a compiler, or if the build fails, decoding keeps the torch.compile path and says so
once.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from functools import cache
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("native_step.c")
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC")
ACTIVATIONS = {"relu": 0, "gelu": 1, "gelu_tanh": 2}  # native_step.c's numbering
_pointer = ctypes.c_void_p


class _Block(ctypes.Structure):
    """native_step.c's Block, field for field."""
    _fields_ = [(name, _pointer) for name in (
        "norm1_w", "norm1_b", "qkv_w", "qkv_b", "out_w", "out_b",
        "norm2_w", "norm2_b", "ff1_w", "ff1_b", "ff2_w", "ff2_b", "past_k", "past_v")] + [
        ("cache_stride", ctypes.c_int64), ("past", ctypes.c_int), ("C", ctypes.c_int), ("H", ctypes.c_int),
        ("F", ctypes.c_int), ("norm_first", ctypes.c_int), ("activation", ctypes.c_int), ("eps", ctypes.c_float)]


def cache_folder() -> Path:
    return Path(os.environ.get("MINITRANSFORMER_CACHE") or Path.home() / ".cache" / "minitransformer")


def build(compiler: str | None = None) -> Path:
    """Compile native_step.c (once per source, flags and compiler) -> the shared library's path.
    Raises RuntimeError with the compiler's message if it cannot."""
    compiler = compiler or os.environ.get("CC") or next(filter(shutil.which, ("cc", "gcc", "clang")), "cc")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C compiler: {compiler!r} is not on PATH (set CC to use another)")
    # -march=native: a build fits this CPU only, so the CPU is part of the name (home folders get shared)
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join((compiler, *FLAGS, _cpu())).encode()).hexdigest()[:16]
    target = cache_folder() / f"native_step-{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        built = Path(scratch) / target.name
        done = subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", str(built), "-lm"], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{compiler} could not compile {SOURCE.name}: {done.stderr.strip()[-500:]}")
        os.replace(built, target)  # whole or absent: another process may be loading it
    return target


def _cpu() -> str:
    """The CPU's model and instruction sets (Linux), or what Python knows of it elsewhere."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    return " ".join(line for line in lines[:30] if line.startswith(("model name", "flags", "Features")))


@cache
def library() -> ctypes.CDLL | None:
    """The compiled native_step.c, or None (with one warning saying why) where it cannot be built."""
    try:
        lib = ctypes.CDLL(str(build()))
    except (RuntimeError, OSError) as error:
        warnings.warn(f"native decoding step unavailable, using torch.compile's: {error}", stacklevel=2)
        return None
    lib.model_step.argtypes = [ctypes.POINTER(_Model), _pointer, _pointer]
    lib.linear.argtypes = [_pointer, _pointer, _pointer, _pointer, ctypes.c_int, ctypes.c_int]
    return lib


class _Model(ctypes.Structure):
    """native_step.c's Model."""
    _fields_ = [("blocks", ctypes.POINTER(_Block)), ("n_blocks", ctypes.c_int), ("vocab", ctypes.c_int),
                ("has_norm", ctypes.c_int)] + [(name, _pointer) for name in ("norm_w", "norm_b", "head_w", "head_b")] + [
                ("norm_eps", ctypes.c_float)]


def model_step(model, x: torch.Tensor, cache, mask, rotary) -> torch.Tensor | None:
    """A GPT's `step` after the embedding, in one C call: x (1, 1, C) -> logits (1, V), the keys and values
    added to `cache`; or None where the native step does not apply (then the model runs its own step):
    more than one row, a padded position, rotary positions, an empty cache, or a tensor that is not
    bfloat16 and contiguous (a model cast in part, say)."""
    if x.shape[0] != 1 or x.dtype != torch.bfloat16 or rotary is not None or cache.length == 0:
        return None
    if mask is not None and not bool(mask.all()):
        return None
    if cache.native is None:  # the weights' addresses, gathered once per run like the weights themselves
        cache.native = _native_model(model, cache)
    native = cache.native
    if native is False:
        return None
    for block, kv in zip(native.block_array, cache.layers):  # the array the C reads, element by element
        keys, values = kv.writable(1)  # (1, H, max_len, D)
        block.past_k, block.past_v, block.cache_stride, block.past = (
            keys.data_ptr(), values.data_ptr(), keys.stride(1), kv.length)
    logits = x.new_empty(1, native.vocab)
    library().model_step(ctypes.byref(native), x.contiguous().data_ptr(), logits.data_ptr())
    for kv in cache.layers:
        kv.advance(1)
    return logits


def _native_model(model, cache) -> _Model | bool:
    """native_step.c's Model for a GPT and its cache, or False where a tensor is not bfloat16 and contiguous."""
    blocks = [kv.step_weights(layer) for layer, kv in zip(model.blocks, cache.layers)]  # compiled_block.Block
    if not all(hasattr(b, "qkv") for b in blocks):  # torch.compile's step would not run either
        return False
    norm, head = model.norm_f, model.lm_head
    tensors = [t for b in blocks for t in (*b.norm1, *b.qkv, *b.out, *b.norm2, *b.ff1, *b.ff2)]
    tensors += [kv.writable(0)[0] for kv in cache.layers] + [head.weight, head.bias]
    tensors += [] if norm is None else [norm.weight, norm.bias]
    if not all(_is_bf16(t) for t in tensors if t is not None):
        return False
    array = (_Block * len(blocks))(*map(_native_block, blocks))
    norm_w, norm_b, eps = (None, None, 0.0) if norm is None else (norm.weight, norm.bias, norm.eps)
    native = _Model(array, len(blocks), head.weight.shape[0], norm is not None, _address(norm_w), _address(norm_b),
                    _address(head.weight), _address(head.bias), eps)
    # the C reads this array and these tensors' memory: they live as long as the run's cache
    native.block_array, native.block_weights = array, blocks
    return native


def _native_block(block) -> _Block:
    tensors = [*block.norm1, *block.qkv, *block.out, *block.norm2, *block.ff1, *block.ff2]
    C, F = block.ff1[0].shape[1], block.ff1[0].shape[0]
    return _Block(*map(_address, tensors), None, None, 0, 0, C, block.n_heads, F, block.norm_first,
                  ACTIVATIONS[block.activation], block.eps)


def _address(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _is_bf16(t: torch.Tensor) -> bool:
    return t.dtype == torch.bfloat16 and t.is_contiguous()


def can_multiply(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether `linear` takes these: one row, all bfloat16 and contiguous."""
    return x.numel() == x.shape[-1] and _is_bf16(x) and _is_bf16(weight) and (bias is None or _is_bf16(bias))


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (1, in) @ weight.T + bias in float32 sums, rounded once to bfloat16: -> (1, out)."""
    out, d_in = weight.shape
    x = x.contiguous()
    y = x.new_empty(1, out)
    library().linear(weight.data_ptr(), _address(bias), x.data_ptr(), y.data_ptr(), out, d_in)
    return y
