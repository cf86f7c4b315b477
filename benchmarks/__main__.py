"""python -m benchmarks [--smoke] [--only NAME[,NAME]] [--out DIR] [--threads N]

Runs the benchmark sections (see SECTIONS) in this process and writes
    DIR/latest.json   every number, the machine description and the targets
    DIR/latest.md     the same as Markdown tables, with each target marked met / not met
    DIR/latest.png    one plot per section
DIR defaults to benchmarks/results for a full run. --smoke shrinks every section to seconds
(for CI and tests/test_benchmarks_smoke.py) and, without --out, writes to a fresh temporary
folder so that the committed results are never overwritten by smoke numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import attention, bandwidth, convergence, generate, mfu, notebooks, speedrun, threads, train, widgets
from .common import environment

SECTIONS = {
    m.NAME: m
    for m in (train, convergence, generate, attention, mfu, notebooks, widgets, bandwidth, threads, speedrun)
}
OPT_IN = ("speedrun",)  # about 70 minutes (13 five-minute runs): a full run includes it only with --only
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[1])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds in all (CI)")
    parser.add_argument(
        "--only", default=None, help=f"comma-separated sections to run, from: {', '.join(SECTIONS)}"
    )
    parser.add_argument(
        "--threads",
        default=None,
        type=int,
        help="torch threads (default: torch's own choice, recorded in the results)",
    )
    parser.add_argument(
        "--out",
        default=None,
        type=Path,
        help="output folder (default: benchmarks/results; a temporary folder with --smoke)",
    )
    args = parser.parse_args(argv)
    default = [n for n in SECTIONS if args.smoke or n not in OPT_IN]  # a smoke run takes seconds: all of them
    names = default if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown or not names:
        parser.error(f"unknown section(s) {unknown or args.only!r}; choose from {', '.join(SECTIONS)}")
    args.names = names
    if args.out is None and not args.smoke:
        args.out = RESULTS_DIR  # a smoke run without --out gets a fresh temporary folder in main()
    return args


def run_sections(names, smoke: bool, command: str = "python -m benchmarks") -> dict:
    os.environ.setdefault("MPLBACKEND", "Agg")
    report = {"smoke": smoke, "command": command, "environment": environment(), "sections": {}}
    for name in names:
        print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            section = SECTIONS[name].run(smoke)
        except Exception as e:  # report the failure and go on with the other sections
            section = {
                "title": SECTIONS[name].TITLE,
                "status": "error",
                "note": f"{type(e).__name__}: {e}",
                "columns": [],
                "rows": [],
                "metrics": {},
                "targets": [],
                "traceback": traceback.format_exc(),
            }
        section["seconds"] = time.perf_counter() - start
        print(
            f"[benchmarks] {name}: {section['status']} in {section['seconds']:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        report["sections"][name] = section
    report["environment"]["cpu_busy_after_end"] = environment()["cpu_busy_before_start"]
    return report


def to_markdown(report: dict) -> str:
    env = report["environment"]
    busy = env.get("cpu_busy_before_start")
    lines = [
        "# minitransformer benchmarks"
        + (" (smoke run: tiny sizes, numbers mean nothing)" if report["smoke"] else ""),
        "",
        f"Command: `{report['command']}`. Every comparison is a ratio of timings taken in the same process on "
        "the same machine: warm-up first, interleaved repetitions, median reported.",
        "",
        "| machine | value |",
        "|---|---|",
    ]
    for key in (
        "date",
        "cpu_model",
        "os_cpu_count",
        "torch_num_threads",
        "torch",
        "transformers",
        "minitransformer",
        "python",
        "platform",
        "load_average_1min",
    ):
        lines.append(f"| {key} | {env.get(key)} |")
    if busy is not None:
        lines.append(f"| CPU busy just before the run | {busy:.0%} |")
    after = env.get("cpu_busy_after_end")
    if after is not None:
        lines.append(f"| CPU busy just after the run | {after:.0%} |")
    targets = [(name, t) for name, s in report["sections"].items() for t in s["targets"]]
    if targets:
        lines += ["", "## Targets", "", "| section | target | measured | met? |", "|---|---|---|---|"]
        for name, t in targets:
            lines.append(
                f"| {name} | {t['target']} | {t['measured']} | {'met' if t['met'] else '**not met**'} |"
            )
    for name, s in report["sections"].items():
        lines += [
            "",
            f"## {s['title']}",
            "",
            f"Section `{name}`: {s['status']}, {s['seconds']:.1f} s. {s['note']}",
        ]
        if s["rows"]:
            lines += ["", "| " + " | ".join(s["columns"]) + " |", "|" + "---|" * len(s["columns"])]
            lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in s["rows"]]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawable = [
        (n, s)
        for n, s in report["sections"].items()
        if s["status"] == "ok" and hasattr(SECTIONS[n], "plot") and s["metrics"]
    ]
    cols = 2
    rows = max(1, math.ceil(len(drawable) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 4 * rows), squeeze=False)
    for ax, (name, section) in zip(axes.flat, drawable):
        SECTIONS[name].plot(ax, section)
    for ax in list(axes.flat)[len(drawable) :]:
        ax.axis("off")
    if not drawable:
        axes[0][0].text(0.5, 0.5, "no section to plot", ha="center")
    fig.suptitle(
        f"minitransformer benchmarks{' (smoke)' if report['smoke'] else ''}: "
        f"{report['environment']['cpu_model']}, {report['environment']['torch_num_threads']} threads"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(report: dict, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {ext: out / f"latest.{ext}" for ext in ("json", "md", "png")}
    paths["json"].write_text(json.dumps(report, indent=1) + "\n")
    paths["md"].write_text(to_markdown(report))
    plot(report, paths["png"])
    return paths


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    # the command as typed, minus --out (a machine-specific path)
    command = "python -m benchmarks" + " --smoke" * args.smoke + (f" --only {args.only}" if args.only else "")
    command += f" --threads {args.threads}" if args.threads is not None else ""
    report = run_sections(args.names, args.smoke, command)
    out = args.out or Path(tempfile.mkdtemp(prefix="minitransformer-bench-"))
    paths = write(report, out)
    print(to_markdown(report))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 1 if any(s["status"] == "error" for s in report["sections"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
