"""Timing, machine description and target bookkeeping shared by every benchmark section.

Rules every section follows:
- every comparison is a ratio of two timings taken in the same process, on the same machine;
- each timed function is warmed up first, then timed several times; we report the median
  (robust to the odd slow run) and, where asked, the 95th percentile;
- when two implementations are compared, their repetitions are *interleaved* (A, B, A, B, ...),
  so that a slow phase of the machine (another process, thermal throttling) hurts both alike.

A section is a module with `NAME`, `TITLE` and `run(smoke: bool) -> dict`; the dict holds
    status   "ok", "listed only" (smoke runs that only enumerate) or "not available yet"
    note     one paragraph: what was measured and how
    columns, rows   the Markdown table
    metrics  nested dict of numbers (every one finite and > 0 when status is "ok")
    targets  [{"target": str, "measured": str, "met": bool}]
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import time
from collections.abc import Callable


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between neighbours, as numpy's default."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def stats(times: list[float]) -> dict:
    """Seconds per call -> {"median", "p95", "min", "n"}."""
    return {
        "median": statistics.median(times),
        "p95": percentile(times, 95),
        "min": min(times),
        "n": len(times),
    }


def calls_per_sample(fn: Callable[[], object], min_seconds: float) -> int:
    """How many back-to-back calls make one timed sample last at least min_seconds (like timeit's autorange)."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - start >= min_seconds or number >= 1_000_000:
            return number
        number *= 2


def compare(
    fns: dict[str, Callable[[], object]], *, warmup: int = 1, repeat: int = 5, number: int = 1
) -> dict[str, dict]:
    """Time several functions, interleaved: per round, each runs `number` times back to back.

    Returns {name: stats(seconds per call)}. Warm-up calls run first and are not timed.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times[name].append((time.perf_counter() - start) / number)
    return {name: stats(t) for name, t in times.items()}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_busy_fraction(seconds: float = 0.5) -> float | None:
    """Share of all CPU time spent busy during a short window (from /proc/stat), or None.

    Taken before the benchmarks start: well above 0 means another process was running and the
    timings are distorted.
    """

    def read():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields), idle

    try:
        total0, idle0 = read()
        time.sleep(seconds)
        total1, idle1 = read()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return None if total <= 0 else 1.0 - (idle1 - idle0) / total


def environment() -> dict:
    """Everything needed to read the numbers: machine, threads, library versions, date."""
    import torch
    import transformers

    import minitransformer

    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "os_cpu_count": os.cpu_count(),
        "torch_num_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "minitransformer": minitransformer.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cpu_busy_before_start": cpu_busy_fraction(),
    }


def target(description: str, value: float, threshold: float, measured: str, higher_is_better=True) -> dict:
    """One target line: met when value >= threshold (or <= when higher_is_better=False)."""
    met = value >= threshold if higher_is_better else value <= threshold
    return {"target": description, "measured": measured, "met": bool(met)}


def not_available(title: str, reason: str) -> dict:
    """The result of a section whose subject does not exist yet (never a failure)."""
    return {
        "title": title,
        "status": "not available yet",
        "note": reason,
        "columns": [],
        "rows": [],
        "metrics": {},
        "targets": [],
    }


def fmt(x: float, digits: int = 3) -> str:
    """A number with `digits` significant digits, without scientific notation for ordinary sizes."""
    if x == 0 or not math.isfinite(x):
        return str(x)
    magnitude = math.floor(math.log10(abs(x)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{x:,.{decimals}f}"
