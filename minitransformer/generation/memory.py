"""Before the first token: will the decoding state of a generate call fit in memory?

Every sequence decoded side by side (a batch row: prompts x num_beams or num_return_sequences)
keeps its own KV cache, and each step scores the whole vocabulary for it. Those rows are
allocated on the first step, so a request for a million beams would die in the allocator (or
swap for minutes) before producing anything. `check_rows_fit` refuses such a request up front,
in microseconds, with how many rows would fit.

The length of the sequences needs no such check: the decoding loop grows its buffers as tokens
arrive, and the KV cache never holds more than the model's context (config.max_len positions).
The estimate is a lower bound, counting only the KV cache and the next-token scores: a refusal
means the request cannot fit; passing the check does not promise that it will.
"""

from __future__ import annotations

import os

import torch

try:
    import resource  # Unix only
except ImportError:  # pragma: no cover - Windows
    resource = None

from ..errors import ConfigError

SCORE_COPIES = 4  # logits, log-softmax or softmax, processed scores, beam totals: (rows, V) float32 each


def bytes_per_row(model, settings) -> int:
    """A lower bound on the memory one decoded sequence needs, in bytes."""
    cfg = model.config
    param = next(model.parameters(), None) if hasattr(model, "parameters") else None
    element = param.element_size() if param is not None else 4
    width, layers = getattr(cfg, "d_model", 0), getattr(cfg, "n_layers", 1)
    if settings.use_cache:  # keys and values of every layer, allocated for the whole context at once
        kv = 2 * layers * width * cfg.max_len * element
        kv *= 2 if settings.num_beams > 1 else 1  # beam search reorders the cache into a second buffer
    else:  # recomputing: at least one layer's keys and values over the context
        kv = 2 * width * cfg.max_len * element
    return kv + SCORE_COPIES * cfg.vocab_size * 4


def memory_of(device: torch.device) -> int | None:
    """Bytes of memory on `device` (the accelerator's, or the machine's RAM), None if unknown."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not on this platform (Windows)
        return None
    return min([total, *_process_limits()])


def _process_limits() -> list[int]:
    """Limits below the machine's RAM: a cgroup v2 limit (containers, CI runners), `ulimit -v`."""
    limits = []
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            text = f.read().strip()
        if text.isdigit():  # "max": no limit
            limits.append(int(text))
    except OSError:
        pass
    if resource is not None:
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            limits.append(soft)
    return limits


def check_rows_fit(model, settings, batch: int, device: torch.device) -> None:
    """Refuse, naming the setting, a call whose batch rows cannot fit in the device's memory."""
    n = max(settings.num_beams, settings.num_return_sequences)
    rows, per_row, have = batch * n, bytes_per_row(model, settings), memory_of(device)
    if have is None or rows * per_row <= have:
        return
    fits = have // per_row
    if n == 1:
        what, advice = f"a batch of {batch} prompts", f"at most {fits} prompts per call"
    else:
        name = "num_beams" if settings.num_beams >= settings.num_return_sequences else "num_return_sequences"
        what = f"{name}={n} ({batch} prompt(s) x {n})"
        advice = f"{name} <= {fits // batch}" if fits >= batch else "fewer prompts per call"
    raise ConfigError(
        f"{what} needs {rows:,} sequences decoded side by side, at least {_size(per_row)} each (a KV cache "
        f"for max_len={model.config.max_len} positions, scores over {model.config.vocab_size} tokens): "
        f"{_size(rows * per_row)}, more than the {_size(have)} of memory on {device.type}. At most "
        f"{fits:,} sequences fit: use {advice}"
    )


def _size(n: float) -> str:
    if n < 1000:
        return f"{n:,.0f} bytes"
    for unit in ("KB", "MB", "GB"):
        n /= 1000
        if n < 1000:
            return f"{n:,.1f} {unit}"
    return f"{n / 1000:,.1f} TB"
