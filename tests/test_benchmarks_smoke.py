"""The benchmark suite runs end to end in its smoke size and writes complete results.

Speed is never asserted here (timings depend on the machine); only that every section ran and
reported finite, positive numbers, and that the Markdown table and the plot were written.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `benchmarks` is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks.__main__ import RESULTS_DIR, SECTIONS, parse_args  # noqa: E402


def _numbers(tree):
    """Every number in a nested dict/list (booleans excluded)."""
    if isinstance(tree, dict):
        for value in tree.values():
            yield from _numbers(value)
    elif isinstance(tree, (list, tuple)):
        for value in tree:
            yield from _numbers(value)
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield tree


def test_smoke_suite_writes_every_section(tmp_path):
    # One torch thread: the smoke run must stay quick even when the machine is busy with other work.
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--threads", "1", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["smoke"] is True
    env = report["environment"]
    for key in ("date", "cpu_model", "os_cpu_count", "torch_num_threads", "torch", "transformers"):
        assert env[key], key
    assert set(report["sections"]) == set(SECTIONS)
    for name, section in report["sections"].items():
        assert section["status"] in ("ok", "listed only", "not available yet"), (name, section["note"])
        if section["status"] == "not available yet":
            continue
        numbers = list(_numbers(section["metrics"]))
        assert numbers, f"section {name} reported no numbers"
        bad = [x for x in numbers if not (math.isfinite(x) and x > 0)]
        assert not bad, f"section {name} has non-finite or non-positive numbers: {bad[:5]}"
        assert section["rows"], f"section {name} has an empty table"
        for t in section["targets"]:
            assert isinstance(t["met"], bool) and t["target"] and t["measured"]
    markdown = (tmp_path / "latest.md").read_text()
    assert "| target | measured | met? |" in markdown
    for section in report["sections"].values():
        assert section["title"] in markdown
    assert (tmp_path / "latest.png").stat().st_size > 0


def test_smoke_never_overwrites_the_committed_results():
    assert parse_args(["--smoke"]).out is None  # main() writes to a fresh temporary folder
    assert parse_args([]).out == RESULTS_DIR
    assert parse_args(["--smoke", "--only", "attention,mfu"]).names == ["attention", "mfu"]


def test_a_full_run_leaves_the_seventy_minute_speedrun_to_only():
    assert "speedrun" not in parse_args([]).names
    assert parse_args(["--only", "speedrun"]).names == ["speedrun"]
    assert "speedrun" in parse_args(["--smoke"]).names
