"""--threads on `train` and `generate`, and the thread benchmark's bookkeeping (never its speed)."""

import json
import sys
from pathlib import Path

import pytest
import torch

from minitransformer.tools.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `benchmarks` is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import threads  # noqa: E402


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


@pytest.mark.parametrize("command", ["train", "generate"])
def test_threads_is_documented(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--threads N" in text and "torch.set_num_threads" in text and "(default: torch's choice" in text


@pytest.fixture
def seen(monkeypatch):
    """The thread count each pipeline `generate` call ran with."""
    counts = []
    generate = sys.modules["minitransformer.tools.pipelines"].generate
    monkeypatch.setattr(
        "minitransformer.tools.pipelines.generate",
        lambda *a, **k: counts.append(torch.get_num_threads()) or generate(*a, **k),
    )
    return counts


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_generate_keeps_torchs_thread_count_unless_asked(keep_threads, seen, dtype):
    """Decoding gains from a second thread in both formats (1.2-1.7x measured, matvec.py)."""
    torch.set_num_threads(2)
    assert main(["generate", "--prompt", "ROMEO:", "--max-new-tokens", "3", "--dtype", dtype]) == 0
    assert seen == [2]


@pytest.mark.parametrize("command", ["train", "generate"])
@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_a_bad_thread_count_is_refused(command, bad, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--threads", bad] + (["--preset", "shakespeare-char"] if command == "train" else []))
    assert stop.value.code == 2
    assert f"argument --threads: must be a positive integer, got '{bad}'" in capsys.readouterr().err


def test_generate_runs_with_the_threads_asked_for(keep_threads, seen, capsys):
    wanted = 2 if keep_threads == 1 else 1  # not the count it already has
    assert main(["generate", "--prompt", "ROMEO:", "--max-new-tokens", "5", "--threads", str(wanted)]) == 0
    assert seen == [wanted] and capsys.readouterr().out.startswith("ROMEO:")


def test_train_runs_and_reports_the_threads_asked_for(keep_threads, tmp_path, capsys):
    wanted = 2 if keep_threads == 1 else 1
    argv = ["train", "--preset", "shakespeare-char", "--out", tmp_path / "run.safetensors", "--steps", "2",
            "--d-model", "16", "--n-layers", "1", "--eval-batches", "1", "--no-progress", "--threads", str(wanted)]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["threads"] == wanted


def test_the_thread_benchmark_puts_the_thread_count_back(keep_threads):
    counts = []
    timings = threads._per_thread_count(lambda: counts.append(torch.get_num_threads()), repeats=2)
    assert set(timings) == set(threads.THREADS) and set(counts) == set(threads.THREADS)
    assert torch.get_num_threads() == keep_threads
