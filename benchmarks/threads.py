"""One torch thread or two: training steps and batch-1 generation at three sizes each.

torch starts one thread per core. On an idle machine more threads split a step's matrix products;
but a tiny model's products are too small to split well, and on a busy machine a thread that waits
for a core stalls the others. This section measures both numbers side by side, in one process,
switching `torch.set_num_threads` between interleaved repetitions, so that the defaults of `--threads`
can be chosen from a measurement. Run it on an idle machine (latest.md records how busy it was).

Training: one Trainer-like step (forward, loss, backward, AdamW) at three shapes, float32 and
bfloat16 autocast: nanoGPT's CPU recipe, the speedrun preset's shape and the bundled
shakespeare-char's. Generation: greedy, batch 1, with the KV cache, at the three sizes of the
bandwidth section (the bundled shape, one in between, GPT-2 small).
"""

from __future__ import annotations

import contextlib
import itertools

import torch
import torch.nn.functional as F

from minitransformer.training import adamw

from .bandwidth import PROMPT_LENGTH, SIZES, SMOKE_SIZES
from .common import compare, fmt
from .train import gpt2_pair

NAME = "threads"
TITLE = "One or two torch threads: training steps and batch-1 generation at three sizes"
THREADS = (1, 2)
TRAIN_SHAPES = {  # (n_layers, n_heads, d_model, context, batch)
    "nanoGPT CPU": dict(n_layers=4, n_heads=4, d_model=128, context=64, batch=12),
    "speedrun": dict(n_layers=4, n_heads=4, d_model=192, context=64, batch=64),
    "bundled": dict(n_layers=6, n_heads=4, d_model=256, context=256, batch=16),
}
SMOKE_TRAIN_SHAPES = {name: dict(n_layers=1, n_heads=2, d_model=32, context=16, batch=2) for name in TRAIN_SHAPES}
NEW_TOKENS, SMOKE_NEW_TOKENS = 64, 3


def _train_step(shape: dict, precision: str):
    ours, _ = gpt2_pair(shape["n_layers"], shape["n_heads"], shape["d_model"], shape["context"])
    optimizer = adamw(ours.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 65, (shape["batch"], shape["context"] + 1), generator=g)
    autocast = lambda: (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16"
                        else contextlib.nullcontext())

    def step():
        with autocast():
            logits = ours(x[:, :-1])
        F.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _generate(shape: dict, new_tokens: int, dtype=torch.float32):
    from minitransformer.generation import generate

    ours, _ = gpt2_pair(**shape)
    ours = ours.to(dtype).eval()
    prompt = torch.randint(1, shape["vocab"], (1, PROMPT_LENGTH), generator=torch.Generator().manual_seed(0))
    return lambda: generate(ours, prompt, max_new_tokens=new_tokens)


def _per_thread_count(fn, repeats: int) -> dict:
    """{threads: stats} for one function, the thread counts interleaved."""
    original = torch.get_num_threads()

    def with_threads(n):
        def call():
            torch.set_num_threads(n)
            return fn()

        return call

    try:
        return compare({n: with_threads(n) for n in THREADS}, warmup=1, repeat=repeats)
    finally:
        torch.set_num_threads(original)


def run(smoke: bool) -> dict:
    train_shapes = SMOKE_TRAIN_SHAPES if smoke else TRAIN_SHAPES
    sizes, new_tokens = (SMOKE_SIZES, SMOKE_NEW_TOKENS) if smoke else (SIZES, NEW_TOKENS)
    repeats = 1 if smoke else 5
    rows, metrics = [], {"train": {}, "generate": {}}
    for name, shape in train_shapes.items():
        for precision in ("fp32", "bf16"):
            t = _per_thread_count(_train_step(shape, precision), repeats)
            tokens = shape["batch"] * shape["context"]
            per_s = {n: tokens / t[n]["median"] for n in THREADS}
            metrics["train"][f"{name} {precision}"] = {f"{n}_threads_tokens_per_s": v for n, v in per_s.items()}
            rows.append(["train", f"{name} {precision}", "tokens/s", *(fmt(per_s[n]) for n in THREADS),
                         f"{per_s[2] / per_s[1]:.2f}x"])
    with torch.inference_mode():
        for (name, shape), dtype in itertools.product(sizes.items(), (torch.float32, torch.bfloat16)):
            t = _per_thread_count(_generate(shape, new_tokens, dtype), max(1, repeats - 2))
            per_s = {n: new_tokens / t[n]["median"] for n in THREADS}
            label = f"{name} {'fp32' if dtype == torch.float32 else 'bf16'}"
            metrics["generate"][label] = {f"{n}_threads_tokens_per_s": v for n, v in per_s.items()}
            rows.append(["generate", label, "new tokens/s", *(fmt(per_s[n]) for n in THREADS),
                         f"{per_s[2] / per_s[1]:.2f}x"])
    note = ("Each number is a median of interleaved repetitions (1 thread, 2 threads, 1, 2, ...) after a warm-up, "
            "in one process. Training: one step of forward, cross-entropy, backward and fused AdamW; "
            f"generation: greedy, batch 1, {PROMPT_LENGTH}-token prompt, {new_tokens} new tokens, KV cache, "
            "float32 and bfloat16 (weights and cache). Meaningful only on an otherwise idle machine.")
    return {"title": TITLE, "status": "ok", "note": note,
            "columns": ["work", "shape", "unit", *(f"{n} thread(s)" for n in THREADS), "2 / 1"],
            "rows": rows, "metrics": metrics, "targets": []}


def plot(ax, section):
    labels, ratios = [], []
    for work in ("train", "generate"):
        for name, m in section["metrics"][work].items():
            labels.append(f"{work}: {name}")
            ratios.append(m["2_threads_tokens_per_s"] / m["1_threads_tokens_per_s"])
    ax.barh(range(len(labels)), ratios, color=["C0" if r >= 1 else "C3" for r in ratios])
    ax.axvline(1.0, color="k", linewidth=1)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("speed with 2 threads / with 1 thread")
    ax.set_title("Threads: 2 vs 1 (right of the line: 2 is faster)")
