"""Batch-1 decoding against the machine's memory bandwidth: how close generation comes to its limit.

At batch 1 a decoding step reads every weight once (the tied token matrix too: it is the output
layer) and the keys and values of every cached position, and does about two FLOPs per weight read:
far too little arithmetic to keep a CPU busy, so the step waits on memory. Its speed limit is

    tokens/s  <=  bandwidth / bytes read per token,
    bytes read per token = weights (without the position table, of which a step reads one row)
                           + KV cache: 2 (K and V) x layers x cached positions x d_model x bytes per number

Measured in the same run: the bandwidth, by a streaming copy (a large tensor `copy_`: bytes read +
written / seconds, as STREAM's Copy counts it, with torch's threads, the best of 10 back to back). A
shared host's bandwidth moves within minutes (28 to 56 GB/s within a run here), so the copy runs as
one more entrant in each size's interleaved rounds, and each size's limit uses the median of those
readings: the bandwidth of the same minutes as the decoding's median. Readings before each size and
after the last are kept too, and every fraction is also given against the run's best reading. For the
native bfloat16 step (the target's row) each round's fraction is given as well, against the copy
reading that closed the round: on this host the copy's readings fall into two groups (about 35 and
about 50 GB/s) and the fraction depends on the group. Then greedy
decoding at batch 1 (a 16-token prompt, then new tokens with the KV cache) for three sizes, GPT-2's
architecture with random weights (speed does not depend on the values): the bundled shakespeare-char
shape, GPT-2 small (124M) and one in between. Variants: our GPT in float32 and in bfloat16 (weights and
cache, `model.to(torch.bfloat16)`; "compiled": each block's step by torch.compile, compiled_block.py, run
with `matvec.compiled(native=False)`; "native": the same step in our C, native_step.c, what
`generate --dtype bfloat16-compiled` runs),
and Hugging Face's GPT2LMHeadModel with the same weights, in float32
and bfloat16; and "ours assisted": the float32 model with a bfloat16 copy drafting 20 tokens per check
(generation/assisted.py), whose text is float32's greedy text. Each row gives tokens/s and its fraction
of the limit for the bytes it reads per token (assisted: the drafts' bfloat16 steps plus the float32
checks, each shared by the tokens it keeps). A model
that fits in the CPU's last-level cache (the bundled one, 19 MB in float32) is not bound by memory
bandwidth, and can exceed "100%". "matmuls alone" times only the step's matrix products (torch's
kernels, with the split over threads that our fp32 step uses, matvec.py; torch.compile's loop; our C's):
no decoder built on these kernels can beat it, so it shows how much of the gap is the kernels' and how much
is ours.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch

from minitransformer import matvec

from .common import compare, fmt, target
from .train import gpt2_pair

NAME = "bandwidth"
TITLE = "Batch-1 decoding as a fraction of the memory-bandwidth limit (streaming copy, same run)"
PROMPT_LENGTH = 16
SIZES = {  # (n_layers, n_heads, d_model, context, vocab)
    "bundled": dict(n_layers=6, n_heads=4, d_model=256, context=256, vocab=65),
    "middle": dict(n_layers=8, n_heads=8, d_model=512, context=1024, vocab=50257),
    "124M": dict(n_layers=12, n_heads=12, d_model=768, context=1024, vocab=50257),
}
SMOKE_SIZES = {
    "bundled": dict(n_layers=1, n_heads=2, d_model=32, context=64, vocab=65),
    "middle": dict(n_layers=1, n_heads=2, d_model=48, context=64, vocab=300),
    "124M": dict(n_layers=2, n_heads=2, d_model=64, context=64, vocab=500),
}
NEW_TOKENS, SMOKE_NEW_TOKENS = 128, 4
ROUNDS = 5  # timed rounds per size, each closed by a copy reading: the host's copy jumps between two levels
COPY_BYTES, SMOKE_COPY_BYTES = 256 * 2**20, 4 * 2**20  # each buffer; 256 MiB is far beyond any cache
COPY_REPEATS, SMOKE_COPY_REPEATS = 10, 2
VARIANTS = ("ours fp32", "ours bf16", "ours bf16 compiled", "ours bf16 native", "ours assisted", "HF fp32", "HF bf16")
KERNELS = ("matmuls alone fp32", "matmuls alone bf16", "matmuls alone bf16 compiled", "matmuls alone bf16 native")
TARGET = "ours bf16 native"  # the best bfloat16 step: what `generate --dtype bfloat16-compiled` runs


def copy_bandwidth(nbytes: int, repeats: int) -> float:
    """Bytes per second of a streaming copy, read + written (STREAM's Copy), best of `repeats`."""
    src = torch.ones(nbytes // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch: the pages are mapped now, not while timing
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best


def matmuls_alone(model, repeats: int) -> float:
    """Seconds for one step's matrix products by themselves: every linear layer's weight and the
    output layer, times one random vector, as our step multiplies them (matvec.py)."""
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    split = [(matvec.for_decoding(w, None)[0], torch.randn(1, w.shape[1], dtype=w.dtype)) for w in weights]
    best = float("inf")
    with torch.inference_mode():  # as in generation (and one compiled loop for both)
        for _ in range(repeats + 1):  # the first pass warms up
            start = time.perf_counter()
            for w, x in split:
                matvec.linear(x, w)
            best = min(best, time.perf_counter() - start)
    return best


def bytes_per_token(model, cached_positions: float) -> float:
    """Bytes a batch-1 decoding step reads: every weight once (the learned position table: one row) and
    the cached keys and values. Works for our GPT and Hugging Face's GPT2LMHeadModel alike."""
    seen, total = set(), 0
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) in seen:
                continue  # a tied matrix is read once
            seen.add(id(p))
            rows = p.shape[0] if p.ndim == 2 else 1
            is_positions = isinstance(module, torch.nn.Embedding) and rows > 0 and _is_position_table(module, model)
            total += (p[0].numel() if is_positions else p.numel()) * p.element_size()
    config = model.config
    layers = getattr(config, "n_layers", None) or config.n_layer
    width = getattr(config, "d_model", None) or config.n_embd
    element = next(model.parameters()).element_size()
    return total + 2 * layers * cached_positions * width * element


def _is_position_table(embedding, model) -> bool:
    """The learned position table: an embedding whose rows are positions, not tokens."""
    vocab = model.config.vocab_size
    return embedding.num_embeddings != vocab


def _runners(models: dict, prompt, new_tokens: int) -> dict:
    from minitransformer.generation import generate

    mask = torch.ones_like(prompt)
    runners = {}
    for name, model in models.items():
        if name == "ours assisted":
            runners[name] = lambda m=model: generate(m[0], prompt, max_new_tokens=new_tokens, assistant_model=m[1])
        elif name in ("ours bf16 compiled", "ours bf16 native"):
            native = name.endswith("native")
            runners[name] = lambda m=model, n=native: _compiled_generate(m, prompt, mask, new_tokens, n)
        elif name.startswith("ours"):
            runners[name] = lambda m=model: generate(m, prompt, attention_mask=mask, max_new_tokens=new_tokens)
        else:
            runners[name] = lambda m=model: m.generate(
                prompt, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                do_sample=False, pad_token_id=0, eos_token_id=None,
            )
    return runners


def _compiled_generate(model, prompt, mask, new_tokens: int, native: bool):
    from minitransformer.generation import generate

    with matvec.compiled(native=native):
        return generate(model, prompt, attention_mask=mask, max_new_tokens=new_tokens)


def measure_size(shape: dict, new_tokens: int, repeats: int, copies: tuple) -> tuple[dict, list]:
    """({variant: {"tokens_per_s", "bytes_per_token"}}, copy readings interleaved with them) for one size."""
    ours, hf = gpt2_pair(**shape)
    models = {"ours fp32": ours.eval(), "ours bf16": copy.deepcopy(ours).to(torch.bfloat16).eval(),
              "HF fp32": hf.eval(), "HF bf16": copy.deepcopy(hf).to(torch.bfloat16).eval()}
    models["ours bf16 compiled"] = models["ours bf16 native"] = models["ours bf16"]
    models["ours assisted"] = (models["ours fp32"], models["ours bf16"])
    prompt = torch.randint(1, shape["vocab"], (1, PROMPT_LENGTH), generator=torch.Generator().manual_seed(0))
    readings, target_seconds = [], []
    runners = _runners(models, prompt, new_tokens)
    runners[TARGET] = _recorded(runners[TARGET], target_seconds)
    runners["copy"] = lambda: readings.append(copy_bandwidth(*copies))  # last in each round
    with torch.inference_mode():
        timings = compare(runners, warmup=1, repeat=repeats)
    del timings["copy"], readings[0], target_seconds[0]  # the warm-up's
    cached = PROMPT_LENGTH + (new_tokens - 1) / 2  # positions read per step, on average over the new tokens
    read = {name: bytes_per_token(m, cached) for name, m in models.items() if name != "ours assisted"}
    checks = assisted_checks(models["ours assisted"], prompt, new_tokens)
    # a check reads the float32 weights once for all the tokens it keeps
    drafts, passes = checks["drafted"] / new_tokens, checks["checks"] / new_tokens
    read["ours assisted"] = read["ours bf16"] * drafts + read["ours fp32"] * passes
    results = {name: {"tokens_per_s": new_tokens / timings[name]["median"], "bytes_per_token": read[name]}
               for name in models}
    results["ours assisted"] |= checks
    # each round's decoding (the target's variant) against the copy reading that closed the same round
    results[TARGET]["fraction_each_round"] = [
        new_tokens / seconds * read[TARGET] / reading for seconds, reading in zip(target_seconds, readings)]
    for kernel, variant in zip(KERNELS, ("ours fp32", "ours bf16", "ours bf16 compiled", "ours bf16 native")):
        with matvec.compiled(variant.endswith(("compiled", "native")), native=variant.endswith("native")):
            seconds = matmuls_alone(models[variant], 3 * repeats)
        results[kernel] = {"tokens_per_s": 1 / seconds, "bytes_per_token": read[variant]}
    return results, readings


def _recorded(fn, seconds: list):
    """fn, also appending each call's duration to `seconds`."""
    def timed():
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return timed


def assisted_checks(pair, prompt, new_tokens: int) -> dict:
    """How many drafts the bfloat16 copy proposed, how many the model kept, and in how many checks."""
    from minitransformer.generation.assisted import assisted_greedy
    from minitransformer.generation.decoding import Decoding
    from minitransformer.generation.settings import GenerationSettings

    run = Decoding(pair[0], GenerationSettings(max_new_tokens=new_tokens), prompt, None, None, None, None, None)
    assisted_greedy(run, pair[1])
    return {"drafted": run.drafted, "accepted": run.accepted, "checks": run.checks}


def run(smoke: bool) -> dict:
    sizes, new_tokens = (SMOKE_SIZES, SMOKE_NEW_TOKENS) if smoke else (SIZES, NEW_TOKENS)
    copies = (SMOKE_COPY_BYTES, SMOKE_COPY_REPEATS) if smoke else (COPY_BYTES, COPY_REPEATS)
    readings, measured, interleaved = [copy_bandwidth(*copies)], {}, {}
    for size, shape in sizes.items():
        measured[size], interleaved[size] = measure_size(shape, new_tokens, 1 if smoke else ROUNDS, copies)
        readings.append(copy_bandwidth(*copies))
    best = max(readings + [r for size in interleaved.values() for r in size])
    rows, metrics = [], {"bandwidth_bytes_per_s": best, "bandwidth_readings": readings, "sizes": {},
                         "interleaved_readings": interleaved}
    for size, results in measured.items():
        bandwidth = statistics.median(interleaved[size])
        for variant, r in results.items():
            limit = bandwidth / r["bytes_per_token"]
            r |= {"limit_tokens_per_s": limit, "fraction_of_limit": r["tokens_per_s"] / limit,
                  "fraction_of_best_reading": r["tokens_per_s"] * r["bytes_per_token"] / best}
            rows.append([size, variant, fmt(r["bytes_per_token"] / 2**20), fmt(r["tokens_per_s"]), fmt(limit),
                         f"{r['fraction_of_limit']:.0%}", f"{r['fraction_of_best_reading']:.0%}"])
        metrics["sizes"][size] = results
    return {"title": TITLE, "status": "ok", "note": _note(readings, interleaved, best, new_tokens, sizes, measured),
            "columns": ["size", "variant", "MiB read per token", "tokens/s", "limit tokens/s", "of the limit",
                        "of the run's best reading"],
            "rows": rows, "metrics": metrics, "targets": _targets(metrics["sizes"]["124M"])}


def _note(readings: list, interleaved: dict, best: float, new_tokens: int, sizes: dict, measured: dict) -> str:
    shapes = "; ".join(f"{name}: {s['n_layers']} layers, d_model {s['d_model']}, vocab {s['vocab']:,}"
                       for name, s in sizes.items())
    gbs = lambda values: ", ".join(f"{r / 1e9:.1f}" for r in values)
    per_size = "; ".join(f"{size}: {statistics.median(r) / 1e9:.1f} ({gbs(r)})" for size, r in interleaved.items())
    rounds = "; ".join(f"{size}: " + ", ".join(f"{f:.0%}" for f in m[TARGET]["fraction_each_round"])
                       for size, m in measured.items())
    return (f"Streaming-copy bandwidth, GB/s, the median of the readings interleaved with each size's runs: "
            f"{per_size}. Readings before each size and after the last: {gbs(readings)}; the run's best reading: "
            f"{best / 1e9:.1f}. {torch.get_num_threads()} torch thread(s), the same for decoding. Greedy, batch 1, "
            f"{PROMPT_LENGTH}-token prompt, {new_tokens} new tokens, KV cache; median of interleaved runs after a "
            f"warm-up. Sizes (GPT-2 architecture, random weights): {shapes}. Limit = bandwidth / bytes read per "
            "token (weights + the average KV cache). Ours bf16 native, each round against the copy reading "
            f"that closed it: {rounds}.")


def _targets(big: dict) -> list[dict]:
    speed = {variant: r["tokens_per_s"] for variant, r in big.items()}
    bf16, fp32, hf = (speed[v] for v in (TARGET, "ours fp32", "HF fp32"))
    step = big[TARGET]
    fraction = step["fraction_of_limit"]
    rounds = ", ".join(f"{f:.0%}" for f in step["fraction_each_round"])
    measured = f"{fraction:.0%} (rounds: {rounds}; {step['fraction_of_best_reading']:.0%} of the run's best reading)"
    return [
        target("124M: bfloat16 (compiled, native step) >= 1.6x float32 tokens/s (ours)", bf16 / fp32, 1.6, f"{bf16 / fp32:.2f}x"),
        target("124M: ours float32 >= 1.3x Hugging Face float32", fp32 / hf, 1.3, f"{fp32 / hf:.2f}x"),
        target("124M: ours bfloat16 (compiled, native step) >= 60% of the bandwidth limit", fraction, 0.6, measured),
    ]


def plot(ax, section):
    sizes = section["metrics"]["sizes"]
    bars = [v for v in VARIANTS + KERNELS if v in next(iter(sizes.values()))]  # older results: no kernels
    width = 0.8 / len(bars)
    for i, variant in enumerate(bars):
        values = [100 * sizes[s][variant]["fraction_of_limit"] for s in sizes]
        offset = i - (len(bars) - 1) / 2
        xs = [k + offset * width for k in range(len(sizes))]
        ax.bar(xs, values, width, label=variant, hatch="//" if variant in KERNELS else None)
        if "fraction_each_round" in sizes[next(iter(sizes))][variant]:  # the target's variant (older runs: compiled)
            _plot_rounds(ax, xs, [sizes[s][variant] for s in sizes])
    ax.axhline(60, color="k", linestyle="--", linewidth=1, label="target 60% (bf16, 124M)")
    ax.set_xticks(range(len(sizes)), list(sizes), fontsize=8)
    ax.set_xlabel("model size (GPT-2 architecture)")
    ax.set_ylabel("decode tokens/s, % of the bandwidth limit")
    ax.set_title("Batch-1 decoding against memory bandwidth")
    rounds = [f for s in sizes for v in bars for f in sizes[s][v].get("fraction_each_round", [])]
    top = max([60] + [100 * sizes[s][v]["fraction_of_limit"] for s in sizes for v in bars] + [100 * f for f in rounds])
    ax.set_ylim(0, top * 1.6)  # room above the bars for the legend
    ax.legend(fontsize=7, ncol=3, loc="upper left")


def _plot_rounds(ax, xs: list, results: list):
    """The target variant's fraction in each round (against that round's copy reading), as dots on its bars."""
    label = "per round"
    for x, r in zip(xs, results):
        fractions = r.get("fraction_each_round", [])  # older results have none
        if fractions:
            ax.plot([x] * len(fractions), [100 * f for f in fractions], "k.", markersize=4, label=label)
            label = None  # one legend entry
