"""Notebook run time: every notebooks/*.ipynb executed top to bottom, as a learner would.

Each notebook gets a fresh kernel (nbclient starts one per notebook, from this Python), runs in
the notebooks/ folder with MPLBACKEND=Agg, and is timed from kernel start to the last cell.
Nothing is written back to the notebook files. The smoke run only lists the notebooks.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .common import fmt, target

NAME = "notebooks"
TITLE = "Notebook run time (each notebook top to bottom in a fresh kernel)"
NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
TIMEOUT_PER_CELL = 600  # seconds; far above the 90 s target, so slow notebooks are measured, not killed
TARGET_EACH, TARGET_TOTAL = 90.0, 600.0


def execute(path: Path) -> float:
    """Run one notebook in a new kernel; return the seconds it took (raises if a cell fails)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    os.environ.setdefault("MPLBACKEND", "Agg")
    client = NotebookClient(
        nb,
        timeout=TIMEOUT_PER_CELL,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def run(smoke: bool) -> dict:
    paths = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    if smoke:
        return {
            "title": TITLE,
            "status": "listed only",
            "note": "Smoke run: notebooks listed, not executed (`python -m benchmarks --only notebooks` runs them).",
            "columns": ["notebook"],
            "rows": [[p.name] for p in paths],
            "metrics": {"notebooks_found": len(paths)},
            "targets": [],
        }
    rows, seconds, failures = [], {}, {}
    for path in paths:
        try:
            seconds[path.name] = execute(path)
            rows.append([path.name, fmt(seconds[path.name]), "ok"])
        except Exception as e:  # a failing notebook is reported, and the others still run
            failures[path.name] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            rows.append([path.name, "-", failures[path.name]])
    total = sum(seconds.values())
    rows.append(["total", fmt(total), f"{len(seconds)} of {len(paths)} ran"])
    targets = [
        target(
            f"each notebook <= {TARGET_EACH:g} s",
            max(seconds.values(), default=0.0),
            TARGET_EACH,
            f"slowest {max(seconds, key=seconds.get) if seconds else '-'} "
            f"{max(seconds.values(), default=0.0):.1f} s",
            higher_is_better=False,
        )
    ]
    targets.append(
        target(
            f"whole series <= {TARGET_TOTAL / 60:g} min",
            total,
            TARGET_TOTAL,
            f"{total:.1f} s",
            higher_is_better=False,
        )
    )
    if failures:
        targets.append({"target": "every notebook runs", "measured": f"{len(failures)} failed", "met": False})
    metrics = {"seconds": seconds, "total_seconds": total} if seconds else {"notebooks_found": len(paths)}
    return {
        "title": TITLE,
        "status": "ok",
        "note": "Seconds from kernel start to the end of the last cell; a fresh kernel per notebook.",
        "columns": ["notebook", "seconds", "result"],
        "rows": rows,
        "metrics": metrics,
        "targets": targets,
    }


def plot(ax, section):
    seconds = section["metrics"].get("seconds", {})
    ax.barh(list(seconds), list(seconds.values()))
    ax.axvline(TARGET_EACH, color="red", linestyle="--", label=f"target {TARGET_EACH:g} s")
    ax.set_xlabel("seconds")
    ax.set_title("Notebook run time")
    ax.legend(fontsize=7)
