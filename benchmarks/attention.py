"""Attention kernels: our reference path, our fast path, and PyTorch's fused kernel, causal.

    attention_reference   the formula written out: scores, mask, softmax, weights @ v (returns weights)
    attention_fast        our wrapper around F.scaled_dot_product_attention (argument checks, masks)
    torch SDPA            F.scaled_dot_product_attention(q, k, v, is_causal=True) called directly

q, k, v: (B=1, H=4, T, D=64) float32, T from 64 to 1024. Forward alone, and forward + backward
(the gradient of out.sum() with respect to q, k, v). The ratio column is time / SDPA's time:
`attention_fast` should sit at ~1.0x (a thin wrapper); the reference path pays for the (T, T)
score and weight matrices that the fused kernel never materialises.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import calls_per_sample, compare, fmt

NAME = "attention"
TITLE = "Attention: attention_reference vs attention_fast vs torch SDPA (causal)"
B, H, D = 1, 4, 64
LENGTHS = (64, 128, 256, 512, 1024)
SMOKE_LENGTHS = (16, 32)


def _kernels():
    from minitransformer.attention import attention_fast, attention_reference

    return {
        "reference": lambda q, k, v: attention_reference(q, k, v, is_causal=True)[0],
        "fast": lambda q, k, v: attention_fast(q, k, v, is_causal=True)[0],
        "torch SDPA": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
    }


def _forward(kernel, q, k, v):
    def call():
        with torch.no_grad():
            return kernel(q, k, v)

    return call


def _forward_backward(kernel, q, k, v):
    q, k, v = (t.detach().requires_grad_() for t in (q, k, v))

    def call():
        kernel(q, k, v).sum().backward()
        q.grad = k.grad = v.grad = None

    return call


def run(smoke: bool) -> dict:
    rows, metrics = [], {}
    g = torch.Generator().manual_seed(0)
    min_sample = 0.002 if smoke else 0.05  # seconds per timed sample: short kernels run many times
    repeat = 2 if smoke else 9
    for T in SMOKE_LENGTHS if smoke else LENGTHS:
        q, k, v = torch.randn(3, B, H, T, D, generator=g).unbind(0)
        for direction, wrap in (("forward", _forward), ("forward+backward", _forward_backward)):
            fns = {name: wrap(kernel, q, k, v) for name, kernel in _kernels().items()}
            number = calls_per_sample(fns["reference"], min_sample)  # the slowest sets the pace
            timings = compare(fns, warmup=1, repeat=repeat, number=number)
            sdpa = timings["torch SDPA"]["median"]
            entry = metrics.setdefault(direction, {}).setdefault(str(T), {})
            for name, t in timings.items():
                entry[f"{name} ms"] = t["median"] * 1e3
                entry[f"{name} / SDPA"] = t["median"] / sdpa
            rows.append(
                [direction, T]
                + [fmt(timings[n]["median"] * 1e3) for n in timings]
                + [
                    f"{timings['reference']['median'] / sdpa:.2f}x",
                    f"{timings['fast']['median'] / sdpa:.2f}x",
                ]
            )
    note = (
        f"q, k, v: (B={B}, H={H}, T, D={D}) float32, causal. Median of {repeat} interleaved samples, each "
        "many back-to-back calls. Ratios are time / torch SDPA's time (lower is faster)."
    )
    return {
        "title": TITLE,
        "status": "ok",
        "note": note,
        "columns": ["pass", "T", "reference ms", "fast ms", "torch SDPA ms", "reference/SDPA", "fast/SDPA"],
        "rows": rows,
        "metrics": metrics,
        "targets": [],
    }


def plot(ax, section):
    for direction, style in (("forward", "-"), ("forward+backward", "--")):
        points = section["metrics"][direction]
        lengths = sorted(int(t) for t in points)
        for name, color in (("reference", "C0"), ("fast", "C1"), ("torch SDPA", "C2")):
            ax.plot(
                lengths,
                [points[str(t)][f"{name} ms"] for t in lengths],
                style,
                color=color,
                marker="o",
                label=f"{name} {direction}",
            )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T")
    ax.set_ylabel("ms")
    ax.set_title("Causal attention (B=1, H=4, D=64)")
    ax.legend(fontsize=6)
