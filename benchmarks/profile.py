"""Where the time goes: torch.profiler tables for a training step and for greedy generation.

    python -m benchmarks.profile [--smoke] [--threads N] [--out DIR]

1. One training step of our GPT at the small shape (4 layers, 4 heads, d_model 128, context 64,
   batch 12; forward, cross-entropy, backward, AdamW), after warm-up steps; float32, then
   bfloat16 autocast (why bfloat16 does not pay at this shape).
2. Greedy generation of 200 new tokens with the KV cache (the model of the generation benchmark),
   ours and Hugging Face's, same weights.
3. Our beam search (5 beams, KV cache) for 100 and for 800 new tokens: the operators whose
   time per token grows with the length.

For each: the operators sorted by their own ("self") CPU time, and the Python functions sorted
by cumulative time (cProfile), which shows the per-token overhead that no single operator owns.
Writes DIR/profile.txt (default benchmarks/results; with --smoke a temporary folder).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from . import generate as gen
from . import train

ROW_LIMIT = 25


def _op_table(fn, steps: int) -> str:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            fn()
    return prof.key_averages().table(
        sort_by="self_cpu_time_total", row_limit=ROW_LIMIT, max_name_column_width=50
    )


def _python_table(fn, steps: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        fn()
    profiler.disable()
    out = io.StringIO()
    # strip_dirs: file names without this machine's folders
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("cumulative").print_stats(ROW_LIMIT)
    return out.getvalue()


def training_step(smoke: bool, dtype="fp32"):
    shape = train.SMOKE_SHAPES["small"] if smoke else train.SHAPES["small"]
    ours, _ = train.gpt2_pair(shape["n_layers"], shape["n_heads"], shape["d_model"], shape["context"])
    data = torch.randint(
        0, train.VOCAB, (shape["batch"], shape["context"] + 1), generator=torch.Generator().manual_seed(1)
    )
    return train._train_step(ours, data[:, :-1], data[:, 1:], dtype)


def beam_search(smoke: bool, new_tokens: int):
    from minitransformer.generation import generate

    shape = gen.SMOKE_SHAPE if smoke else gen.SHAPE
    ours, _ = train.gpt2_pair(shape["n_layers"], shape["n_heads"], shape["d_model"], shape["context"])
    ours.eval()
    prompt = torch.randint(1, 65, (1, gen.PROMPT_LENGTH), generator=torch.Generator().manual_seed(2))
    # min_new_tokens: every run makes exactly new_tokens tokens, whatever the random model writes
    return lambda: generate(ours, prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, num_beams=5)


def greedy(smoke: bool):
    shape = gen.SMOKE_SHAPE if smoke else gen.SHAPE
    ours, hf = train.gpt2_pair(shape["n_layers"], shape["n_heads"], shape["d_model"], shape["context"])
    ours.eval(), hf.eval()
    prompt = torch.randint(1, 65, (1, gen.PROMPT_LENGTH), generator=torch.Generator().manual_seed(2))
    return gen._runners(ours, hf, prompt, "greedy", True, 20 if smoke else 200)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    out = args.out or (
        Path(tempfile.mkdtemp(prefix="minitransformer-profile-"))
        if args.smoke
        else Path(__file__).resolve().parent / "results"
    )
    steps = 2 if args.smoke else 20
    sections = []
    for dtype in ("fp32", "bf16"):
        step = training_step(args.smoke, dtype)
        for _ in range(3):  # warm-up
            step()
        title = f"training step, small shape, ours {dtype}: {steps} steps"
        sections.append((f"{title}, operators by self CPU time", _op_table(step, steps)))
        if dtype == "fp32":
            sections.append((f"{title}, Python by cumulative time", _python_table(step, steps)))
    runners = greedy(args.smoke)
    for name, fn in runners.items():
        fn()  # warm-up
        sections.append(
            (f"greedy generation with KV cache, {name}: operators by self CPU time", _op_table(fn, 1))
        )
        sections.append(
            (f"greedy generation with KV cache, {name}: Python by cumulative time", _python_table(fn, 1))
        )
    for new_tokens in (10, 40) if args.smoke else (100, 800):
        fn = beam_search(args.smoke, new_tokens)
        fn()  # warm-up
        title = f"beam search, 5 beams, KV cache, ours, {new_tokens} new tokens: operators by self CPU time"
        sections.append((title, _op_table(fn, 1)))
    text = f"torch {torch.__version__}, {torch.get_num_threads()} threads\n\n" + "\n\n".join(
        f"=== {title} ===\n{table}" for title, table in sections
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "profile.txt").write_text(text)
    print(text)
    print(f"wrote {out / 'profile.txt'}")  # the path goes to the terminal only, never into a file
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
