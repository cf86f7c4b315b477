"""Generation speed: `minitransformer.generate` against Hugging Face's `model.generate`, same weights.

A small GPT-2 shape (4 layers, 4 heads, d_model 128, vocabulary 65, 1024 positions so that 800
new tokens fit) is built once in Hugging Face and copied into our GPT with `GPT.from_hf_gpt2`.
Both continue the same 16-token prompt (batch 1) with greedy search, sampling (top_k=50,
top_p=0.95) and beam search (num_beams=5), with the KV cache on and off. No EOS id is given, so
every run writes exactly max_new_tokens tokens in both libraries.

Reported: new tokens per second, the ratio ours / Hugging Face, and how the average time per
token grows with the length: growth = (time per token at 800 new tokens) / (time at 100).
With a KV cache each step costs O(prefix) in attention only, so the growth should stay small.

The same comparison at GPT-2's real size (124M parameters: 12 layers, 12 heads, d_model 768, the
50,257-token vocabulary; random weights) shows where the speed-up comes from: the small model's
steps are dominated by Python overhead, which our one-token step removes, while a 124M step reads
500 MB of weights and is bound by memory bandwidth in both libraries; there ours reads with every
core (matvec.py).
"""

from __future__ import annotations

import torch

from .common import compare, fmt, target
from .train import gpt2_pair

NAME = "generate"
TITLE = "Generation speed: minitransformer.generate vs Hugging Face generate (same weights)"
PROMPT_LENGTH = 16
MODES = {
    "greedy": {},
    "sampling": dict(do_sample=True, top_k=50, top_p=0.95),
    "beam": dict(num_beams=5),
}
LENGTHS = (100, 200, 400, 800)
# Without a cache every step reruns the whole sequence: O(length²) in all. Beam search multiplies
# that by 5, so its cache-off runs stop at 200 new tokens to keep the suite short.
NO_CACHE_LENGTHS = {"greedy": LENGTHS, "sampling": LENGTHS, "beam": (100, 200)}
REPEAT = {True: 3, False: 1}  # timed runs per point, cache on / off (cache-off runs are long)
SMOKE_LENGTHS = (4, 8)
SAME_TOKENS = 20  # new tokens of the ours-equals-HF check
SMOKE_SHAPE = dict(n_layers=2, n_heads=2, d_model=32, context=64)
SHAPE = dict(n_layers=4, n_heads=4, d_model=128, context=1024)
REAL_SIZE = dict(n_layers=12, n_heads=12, d_model=768, context=1024, vocab=50257)  # GPT-2 small, 124M
REAL_SIZE_TOKENS, REAL_SIZE_REPEAT = 50, 3


def _runners(ours, hf, prompt, mode, use_cache, new_tokens):
    from minitransformer.generation import generate

    mask = torch.ones_like(prompt)
    kwargs = dict(MODES[mode], attention_mask=mask, max_new_tokens=new_tokens, use_cache=use_cache)

    def run_ours():
        torch.manual_seed(0)
        return generate(ours, prompt, **kwargs)

    def run_hf():
        torch.manual_seed(0)
        # eos_token_id=None and min_new_tokens: no early stop; pad_token_id silences a warning.
        return hf.generate(prompt, **kwargs, min_new_tokens=new_tokens, pad_token_id=0, eos_token_id=None)

    return {"ours": run_ours, "HF": run_hf}


def measure(smoke: bool) -> dict:
    shape = SMOKE_SHAPE if smoke else SHAPE
    ours, hf = gpt2_pair(shape["n_layers"], shape["n_heads"], shape["d_model"], shape["context"])
    ours.eval(), hf.eval()
    prompt = torch.randint(1, 65, (1, PROMPT_LENGTH), generator=torch.Generator().manual_seed(2))
    same, check_tokens = {}, SMOKE_LENGTHS[-1] if smoke else SAME_TOKENS
    for mode in ("greedy", "beam"):  # deterministic modes must give the same tokens
        a, b = (f() for f in _runners(ours, hf, prompt, mode, True, check_tokens).values())
        same[mode] = bool(torch.equal(a, b))
    results = {}
    for mode in MODES:
        for use_cache in (True, False):
            lengths = SMOKE_LENGTHS if smoke else (LENGTHS if use_cache else NO_CACHE_LENGTHS[mode])
            # warm up once per setting on a short run (first calls allocate and pick kernels)
            for warm in _runners(ours, hf, prompt, mode, use_cache, 2 if smoke else 5).values():
                warm()
            for n in lengths:
                timings = compare(
                    _runners(ours, hf, prompt, mode, use_cache, n),
                    warmup=0,
                    repeat=1 if smoke else REPEAT[use_cache],
                )
                results[(mode, use_cache, n)] = timings
    real = {} if smoke else measure_real_size(prompt)
    return {"shape": shape, "results": results, "same_tokens": same, "check_tokens": check_tokens, "real": real}


def measure_real_size(prompt) -> dict:
    """Greedy and 5-beam search with the KV cache at GPT-2 small's size: {mode: timings}."""
    ours, hf = gpt2_pair(**REAL_SIZE)
    ours.eval(), hf.eval()
    timings = {}
    for mode in ("greedy", "beam"):
        runners = _runners(ours, hf, prompt, mode, True, REAL_SIZE_TOKENS)
        timings[mode] = compare(runners, warmup=1, repeat=REAL_SIZE_REPEAT)
    return timings


def run(smoke: bool) -> dict:
    m = measure(smoke)
    rows, metrics, targets = [], {}, []
    by_setting: dict = {}
    for (mode, use_cache, n), t in m["results"].items():
        cache = "cache" if use_cache else "no cache"
        tps = {impl: n / t[impl]["median"] for impl in ("ours", "HF")}
        ratio = tps["ours"] / tps["HF"]
        rows.append(
            [
                mode,
                cache,
                n,
                fmt(tps["ours"]),
                fmt(tps["HF"]),
                f"{ratio:.2f}x",
                fmt(1e3 / tps["ours"]),
                fmt(1e3 / tps["HF"]),
            ]
        )
        entry = metrics.setdefault(mode, {}).setdefault(cache, {})
        entry[str(n)] = {
            "ours_tokens_per_s": tps["ours"],
            "hf_tokens_per_s": tps["HF"],
            "ratio": ratio,
            "ours_ms_per_token": 1e3 / tps["ours"],
            "hf_ms_per_token": 1e3 / tps["HF"],
        }
        by_setting.setdefault((mode, cache), {})[n] = entry[str(n)]
    for (mode, cache), points in by_setting.items():
        lengths = sorted(points)
        first, last = points[lengths[0]], points[lengths[-1]]
        growth = {
            impl: last[f"{impl}_ms_per_token"] / first[f"{impl}_ms_per_token"] for impl in ("ours", "hf")
        }
        metrics[mode][cache]["growth_ours"] = growth["ours"]
        metrics[mode][cache]["growth_hf"] = growth["hf"]
        if cache != "cache":
            continue
        worst = min(p["ratio"] for p in points.values())
        needed = 1.0 if mode == "beam" else 2.0
        targets.append(
            target(
                f"{mode} with cache >= {needed:g}x HF tokens/s at every length",
                worst,
                needed,
                f"worst {worst:.2f}x (lengths {', '.join(map(str, lengths))})",
            )
        )
        targets.append(
            target(
                f"{mode} with cache: per-token time at {lengths[-1]} <= 1.3x at {lengths[0]} (ours)",
                growth["ours"],
                1.3,
                f"{growth['ours']:.2f}x (HF {growth['hf']:.2f}x)",
                higher_is_better=False,
            )
        )
    _real_size_rows(m["real"], rows, metrics)
    s = m["shape"]
    note = (
        f"GPT-2 shape {s['n_layers']} layers, {s['n_heads']} heads, d_model {s['d_model']}, vocab 65, "
        f"{s['context']} positions; prompt {PROMPT_LENGTH} tokens, batch 1; sampling top_k=50 top_p=0.95; "
        "beam num_beams=5. tokens/s counts new tokens; median of "
        f"{REPEAT[True]} (cache) / {REPEAT[False]} (no cache) interleaved runs after a warm-up. "
        "Growth = average ms per token at the longest length / at the shortest. "
        f"Same tokens as HF ({m['check_tokens']} new, cache on): greedy {m['same_tokens']['greedy']}, "
        f"beam {m['same_tokens']['beam']}. Cache-off beam search stops at "
        f"{NO_CACHE_LENGTHS['beam'][-1]} new tokens (cost grows with length squared times 5 beams). "
        f"Rows marked 124M: GPT-2 small's shape, {REAL_SIZE_TOKENS} new tokens, median of {REAL_SIZE_REPEAT}."
    )
    return {
        "title": TITLE,
        "status": "ok",
        "note": note,
        "columns": [
            "mode",
            "KV cache",
            "new tokens",
            "ours tok/s",
            "HF tok/s",
            "ours/HF",
            "ours ms/token",
            "HF ms/token",
        ],
        "rows": rows,
        "metrics": metrics,
        "targets": targets,
    }


def _real_size_rows(real, rows, metrics):
    for mode, t in real.items():
        tps = {impl: REAL_SIZE_TOKENS / t[impl]["median"] for impl in ("ours", "HF")}
        ratio = tps["ours"] / tps["HF"]
        rows.append([f"{mode} 124M", "cache", REAL_SIZE_TOKENS, fmt(tps["ours"]), fmt(tps["HF"]), f"{ratio:.2f}x",
                     fmt(1e3 / tps["ours"]), fmt(1e3 / tps["HF"])])
        metrics.setdefault("gpt2_124m", {})[mode] = {"ours_tokens_per_s": tps["ours"], "hf_tokens_per_s": tps["HF"],
                                                    "ratio": ratio}


def plot(ax, section):
    for mode, style in zip(MODES, ("-", "--", ":")):
        points = section["metrics"][mode]["cache"]
        lengths = sorted(int(k) for k in points if k.isdigit())
        for impl, color in (("ours", "C0"), ("hf", "C1")):
            ax.plot(
                lengths,
                [points[str(n)][f"{impl}_ms_per_token"] for n in lengths],
                style,
                color=color,
                marker="o",
                label=f"{'ours' if impl == 'ours' else 'HF'} {mode}",
            )
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.set_xlabel("new tokens")
    ax.set_ylabel("ms per token (KV cache)")
    ax.set_title("Generation: time per token")
    ax.legend(fontsize=7)
