"""Training throughput: our GPT against Hugging Face's GPT2LMHeadModel of the same shape.

Both models are built from the SAME weights (a randomly initialised GPT2LMHeadModel, copied into
our GPT with `GPT.from_hf_gpt2`), so they compute the same function; the first loss of each is
recorded as a check. One training step is what `Trainer` does, written out without the extras:

    logits = model(x); loss = cross_entropy(logits, y); loss.backward(); AdamW step; zero grads

float32 on the CPU, dropout 0, the same AdamW settings and the same batch for both. We also time
our model under bfloat16 autocast (`TrainConfig(precision="bfloat16")`), and Hugging Face's too.
Throughput = tokens per step (batch * context) / median step time.
"""

from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F

from minitransformer.training import adamw

from .common import compare, fmt, target

NAME = "train"
TITLE = "Training throughput: minitransformer GPT vs Hugging Face GPT2LMHeadModel"
VOCAB = 65  # Tiny Shakespeare's characters

# nanoGPT's CPU recipe shape, and a GPT-2-small-like one cut to fit a short run.
SHAPES = {
    "small": dict(n_layers=4, n_heads=4, d_model=128, context=64, batch=12),
    "large": dict(n_layers=6, n_heads=6, d_model=384, context=256, batch=8),
}
SMOKE_SHAPES = {
    "small": dict(n_layers=2, n_heads=2, d_model=32, context=16, batch=2),
    "large": dict(n_layers=2, n_heads=2, d_model=48, context=32, batch=2),
}
# (warm-up steps, timed rounds, steps per round): enough rounds for a stable median.
SCHEDULE = {"small": (5, 10, 5), "large": (2, 7, 1)}
SMOKE_SCHEDULE = (1, 2, 1)
VARIANTS = ("ours fp32", "HF fp32", "ours bf16", "HF bf16")


def gpt2_pair(n_layers, n_heads, d_model, context, vocab=VOCAB, seed=0):
    """A random GPT2LMHeadModel and our GPT holding the same weights; both in training mode."""
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    from minitransformer import GPT

    transformers.logging.set_verbosity_error()
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab,
        n_positions=context,
        n_embd=d_model,
        n_layer=n_layers,
        n_head=n_heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        activation_function="gelu_new",
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=0,
    )
    hf = GPT2LMHeadModel(config)
    ours = GPT.from_hf_gpt2(hf)
    return ours.train(), hf.train()


def non_embedding_params(model) -> int:
    """Parameters outside the token and position embedding tables (the tied output matrix is the token table)."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return sum(p.numel() for p in model.parameters() if id(p) not in embeddings)


def _forward(model):
    """ids (B, T) -> logits (B, T, V), for either model."""
    from minitransformer import GPT

    if isinstance(model, GPT):
        return model
    return lambda ids: model(input_ids=ids, use_cache=False).logits


def _train_step(model, x, y, dtype):
    forward = _forward(model)
    optimizer = adamw(model.parameters(), lr=3e-4)  # the trainer's: fused where torch has it, for both models
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bf16" else contextlib.nullcontext()

    def step():
        with autocast:
            logits = forward(x)  # (B, T, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return step


@functools.cache
def measure(smoke: bool) -> dict:
    """{shape: {"shape": ..., "variants": {name: stats}, "tokens_per_step", "params", ...}}; cached per process."""
    shapes = SMOKE_SHAPES if smoke else SHAPES
    results = {}
    for shape_name, shape in shapes.items():
        ours, hf = gpt2_pair(shape["n_layers"], shape["n_heads"], shape["d_model"], shape["context"])
        g = torch.Generator().manual_seed(1)
        data = torch.randint(0, VOCAB, (shape["batch"], shape["context"] + 1), generator=g)
        x, y = data[:, :-1], data[:, 1:]  # (B, T) inputs and next-token targets
        with torch.no_grad():
            first_loss_diff = abs(
                F.cross_entropy(_forward(ours)(x).reshape(-1, VOCAB), y.reshape(-1)).item()
                - F.cross_entropy(_forward(hf)(x).reshape(-1, VOCAB), y.reshape(-1)).item()
            )
        # bf16 variants get their own copies, so every variant trains its own weights from the same start.
        ours16, hf16 = gpt2_pair(shape["n_layers"], shape["n_heads"], shape["d_model"], shape["context"])
        steps = {
            "ours fp32": _train_step(ours, x, y, "fp32"),
            "HF fp32": _train_step(hf, x, y, "fp32"),
            "ours bf16": _train_step(ours16, x, y, "bf16"),
            "HF bf16": _train_step(hf16, x, y, "bf16"),
        }
        warmup, repeat, number = SMOKE_SCHEDULE if smoke else SCHEDULE[shape_name]
        timings = compare(steps, warmup=warmup, repeat=repeat, number=number)
        results[shape_name] = {
            "shape": shape,
            "variants": timings,
            "tokens_per_step": shape["batch"] * shape["context"],
            "params": sum(p.numel() for p in ours.parameters()),
            "hf_params": sum(p.numel() for p in hf.parameters()),
            "non_embedding_params": non_embedding_params(ours),
            "first_loss_abs_diff": first_loss_diff,
            "hf_attn_implementation": hf.config._attn_implementation,
        }
    return results


def run(smoke: bool) -> dict:
    results = measure(smoke)
    rows, metrics, targets = [], {}, []
    for shape_name, r in results.items():
        s, tokens = r["shape"], r["tokens_per_step"]
        tps = {v: tokens / r["variants"][v]["median"] for v in VARIANTS}
        vs_hf = tps["ours fp32"] / tps["HF fp32"]
        bf16_gain = tps["ours bf16"] / tps["ours fp32"]
        shape_text = f"{s['n_layers']}L {s['n_heads']}H C={s['d_model']} T={s['context']} B={s['batch']}"
        for v in VARIANTS:
            st = r["variants"][v]
            rows.append(
                [shape_name, shape_text, v, fmt(tps[v]), fmt(st["median"] * 1e3), fmt(st["p95"] * 1e3)]
            )
        metrics[shape_name] = {
            "tokens_per_s": tps,
            "step_ms_median": {v: r["variants"][v]["median"] * 1e3 for v in VARIANTS},
            "step_ms_p95": {v: r["variants"][v]["p95"] * 1e3 for v in VARIANTS},
            "ratio_ours_over_hf_fp32": vs_hf,
            "ratio_ours_over_hf_bf16": tps["ours bf16"] / tps["HF bf16"],
            "ratio_ours_bf16_over_fp32": bf16_gain,
            "params": r["params"],
        }
        targets.append(target(f"training >= 1.2x HF ({shape_name} shape, fp32)", vs_hf, 1.2, f"{vs_hf:.2f}x"))
        targets.append(
            target(
                f"bf16 >= 2x fp32 training ({shape_name} shape, ours)", bf16_gain, 2.0, f"{bf16_gain:.2f}x"
            )
        )
    checks = "; ".join(
        f"{k}: {r['params']:,} params (HF {r['hf_params']:,}), first-loss |ours - HF| = {r['first_loss_abs_diff']:.1e}"
        for k, r in results.items()
    )
    attn = next(iter(results.values()))["hf_attn_implementation"]
    note = (
        "One step = forward, cross-entropy, backward, AdamW (lr 3e-4, fused as in the trainer), zero_grad; dropout 0, "
        f"same weights and batch for both models. Hugging Face attention implementation: {attn!r}. "
        f"Same-weights check: {checks}. Ratio ours/HF fp32 per shape: "
        + ", ".join(f"{k} {m['ratio_ours_over_hf_fp32']:.2f}x" for k, m in metrics.items())
        + "; ours bf16/fp32: "
        + ", ".join(f"{k} {m['ratio_ours_bf16_over_fp32']:.2f}x" for k, m in metrics.items())
        + "."
    )
    return {
        "title": TITLE,
        "status": "ok",
        "note": note,
        "columns": ["shape", "config", "variant", "tokens/s", "step ms (median)", "step ms (p95)"],
        "rows": rows,
        "metrics": metrics,
        "targets": targets,
    }


def plot(ax, section):
    m = section["metrics"]
    shapes = list(m)
    width = 0.8 / len(VARIANTS)
    for i, v in enumerate(VARIANTS):
        ax.bar(
            [j + i * width for j in range(len(shapes))],
            [m[s]["tokens_per_s"][v] for s in shapes],
            width,
            label=v,
        )
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(shapes))], shapes)
    ax.set_ylabel("tokens / s")
    ax.set_yscale("log")
    ax.set_title("Training throughput")
    ax.legend(fontsize=7)
