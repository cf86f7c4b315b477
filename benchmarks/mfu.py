"""Model FLOP utilisation (MFU): how much of the machine's matmul speed training actually uses.

Peak: the best FLOP/s of a square matrix product on this machine, measured in the same run,
    FLOP/s = 2 n³ / t      for torch.mm of two (n, n) matrices, n in {1024, 2048}, best of several,
in float32 and in bfloat16.

Model FLOPs per trained token (the PaLM paper's estimate, appendix B; forward + backward):
    6 · N + 12 · n_layers · d_model · context
where N counts the non-embedding parameters (the token and position tables are left out; the tied
output projection, being the token table, is left out too), 6 N covers the matrix products of
the forward (2 N) and backward (4 N) passes, and the second term the attention scores and their
weighted sums (Q Kᵀ and A V). MFU = FLOPs per token × tokens/s / peak FLOP/s.

The training throughput comes from the training section (measured once per process).
"""

from __future__ import annotations

import time

import torch

from . import train
from .common import fmt, target

NAME = "mfu"
TITLE = "Model FLOP utilisation of training (vs this machine's measured matmul peak)"


def matmul_peak(dtype: torch.dtype, sizes=(1024, 2048), tries: int = 5) -> dict:
    """{"flops": best FLOP/s over sizes and tries, "n": the size that reached it}."""
    best = {"flops": 0.0, "n": 0}
    g = torch.Generator().manual_seed(0)
    for n in sizes:
        a = torch.randn(n, n, generator=g).to(dtype)
        b = torch.randn(n, n, generator=g).to(dtype)
        out = torch.empty(n, n, dtype=dtype)
        torch.mm(a, b, out=out)  # warm-up: thread pool, packing buffers
        for _ in range(tries):
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            flops = 2 * n**3 / (time.perf_counter() - start)
            if flops > best["flops"]:
                best = {"flops": flops, "n": n}
    return best


def flops_per_token(shape: dict, non_embedding_params: int) -> int:
    return 6 * non_embedding_params + 12 * shape["n_layers"] * shape["d_model"] * shape["context"]


def run(smoke: bool) -> dict:
    sizes, tries = ((128, 256), 2) if smoke else ((1024, 2048), 5)
    peak = {
        "fp32": matmul_peak(torch.float32, sizes, tries),
        "bf16": matmul_peak(torch.bfloat16, sizes, tries),
    }
    rows, metrics, targets = [], {"peak_gflops": {k: v["flops"] / 1e9 for k, v in peak.items()}}, []
    for shape_name, r in train.measure(smoke).items():
        per_token = flops_per_token(r["shape"], r["non_embedding_params"])
        entry = metrics.setdefault(
            shape_name, {"flops_per_token": per_token, "non_embedding_params": r["non_embedding_params"]}
        )
        for variant in train.VARIANTS:
            tokens_per_s = r["tokens_per_step"] / r["variants"][variant]["median"]
            achieved = per_token * tokens_per_s
            mfu_fp32 = achieved / peak["fp32"]["flops"]
            precision = variant.split()[-1]
            mfu_own = achieved / peak[precision]["flops"]
            entry[variant] = {
                "achieved_gflops": achieved / 1e9,
                "mfu_vs_fp32_peak": mfu_fp32,
                "mfu_vs_own_precision_peak": mfu_own,
            }
            rows.append(
                [
                    shape_name,
                    variant,
                    fmt(tokens_per_s),
                    fmt(per_token / 1e6),
                    fmt(achieved / 1e9),
                    f"{100 * mfu_fp32:.1f}%",
                    f"{100 * mfu_own:.1f}%",
                ]
            )
        ours = entry["ours fp32"]["mfu_vs_fp32_peak"]
        needed = 0.6 if shape_name == "small" else 0.5
        targets.append(
            target(
                f"{shape_name}-shape MFU >= {needed:.0%} of measured fp32 peak (ours fp32)",
                ours,
                needed,
                f"{ours:.1%} (HF {entry['HF fp32']['mfu_vs_fp32_peak']:.1%})",
            )
        )
    note = (
        "FLOPs per token = 6 * N_nonembedding + 12 * n_layers * d_model * context (PaLM estimate; N excludes "
        "the token/position tables and so the tied output projection). Peak = best 2n^3/t of torch.mm, "
        f"n in {sizes}: fp32 {peak['fp32']['flops'] / 1e9:.1f} GFLOP/s (n={peak['fp32']['n']}), "
        f"bf16 {peak['bf16']['flops'] / 1e9:.1f} GFLOP/s (n={peak['bf16']['n']}). "
        "'MFU (own peak)' divides bf16 runs by the bf16 peak."
    )
    return {
        "title": TITLE,
        "status": "ok",
        "note": note,
        "columns": [
            "shape",
            "variant",
            "tokens/s",
            "MFLOP/token",
            "achieved GFLOP/s",
            "MFU (fp32 peak)",
            "MFU (own peak)",
        ],
        "rows": rows,
        "metrics": metrics,
        "targets": targets,
    }


def plot(ax, section):
    m = section["metrics"]
    labels, values = [], []
    for shape_name in (k for k in m if k != "peak_gflops"):
        for variant in train.VARIANTS:
            labels.append(f"{shape_name}\n{variant}")
            values.append(100 * m[shape_name][variant]["mfu_vs_own_precision_peak"])
    ax.bar(range(len(values)), values, color=["C0", "C1", "C2", "C3"] * (len(values) // 4))
    ax.set_xticks(range(len(values)), labels, fontsize=6)
    ax.set_ylabel("% of measured matmul peak")
    ax.set_title("Training MFU (own precision's peak)")
