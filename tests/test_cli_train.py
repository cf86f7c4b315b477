"""`minitransformer train`: --out is checked before training, a default --out, and a clean Ctrl-C."""

import errno
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import minitransformer as mt
from minitransformer.tools.cli import build_parser, main
from minitransformer.tools.training_tasks import CausalLMTask
from minitransformer.training import TrainConfig, Trainer
from minitransformer.training.checkpoints import read_metadata

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--d-model", "16", "--n-heads", "2", "--n-layers", "1", "--max-len", "16", "--batch-size", "4"]
TINY += ["--eval-batches", "1", "--no-progress", "--precision", "float32"]
TRAIN = ["train", "--preset", "shakespeare-char", *TINY]


def step_of(path) -> int:
    return read_metadata(path)["training_state"]["step"]


def refused_before_training(capsys, argv, *expected):
    """main(argv) fails with one line naming --out, and without training a step."""
    fits = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Trainer, "fit", lambda self: fits.append(self))
        assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert fits == [] and len(err) == 1, err
    assert err[0].startswith("minitransformer: error: argument --out: ")
    assert all(part in err[0] for part in expected), err[0]


def test_out_is_a_folder(tmp_path, capsys):
    refused_before_training(capsys, [*TRAIN, "--out", str(tmp_path)], "is a folder")


@pytest.mark.skipif(not Path("/dev/null").exists(), reason="needs /dev/null")
def test_out_is_a_device(capsys):
    refused_before_training(capsys, [*TRAIN, "--out", "/dev/null"], "not a regular file")


def test_out_below_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    refused_before_training(capsys, [*TRAIN, "--out", str(tmp_path / "file" / "run.st")], "is a file")


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root may write to a read-only folder")
def test_out_in_a_read_only_folder(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    refused_before_training(capsys, [*TRAIN, "--out", str(locked / "run.st")], "ermission denied")


def test_out_where_files_cannot_be_created(tmp_path, capsys, monkeypatch):
    """As above, for any user: every attempt to create a file in that folder fails, as on a read-only disk."""
    locked, real_open = tmp_path / "read-only", os.open
    locked.mkdir()

    def no_new_files(path, flags, *args, **kwargs):
        if Path(path).parent == locked and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_new_files)
    refused_before_training(capsys, [*TRAIN, "--out", str(locked / "run.st")], "ead-only file system")


def test_out_on_a_full_disk(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000)
    )
    refused_before_training(capsys, [*TRAIN, "--out", str(tmp_path / "run.st")], "MiB free")


def test_without_out_the_run_is_saved_to_a_default_path_it_prints(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for expected in ("runs/shakespeare-char.safetensors", "runs/shakespeare-char-2.safetensors"):
        assert main([*TRAIN, "--steps", "1"]) == 0  # the second run does not overwrite the first
        assert f"saving to {expected} (choose another file with --out)" in capsys.readouterr().err
        assert step_of(tmp_path / expected) == 1


def test_resume_says_when_the_run_is_already_done(tmp_path, capsys):
    run = str(tmp_path / "run.st")
    assert main([*TRAIN, "--steps", "2", "--out", run]) == 0
    capsys.readouterr()
    assert main([*TRAIN, "--steps", "2", "--resume", run]) == 2
    assert "argument --steps: the run in" in capsys.readouterr().err


# ----------------------------------------------------------------------------- Ctrl-C


@pytest.fixture(scope="module")
def task():
    tok = mt.data.ascii_tokenizer()
    train, val = mt.train_val_split(mt.load_text("shakespeare")[:20_000])
    return CausalLMTask(*(torch.tensor(tok.encode(t)) for t in (train, val)), context=8, batch_size=4), tok


def tiny_trainer(task, callback=None):
    torch.manual_seed(0)
    task, tok = task
    cfg = mt.TransformerConfig(vocab_size=tok.vocab_size, d_model=16, n_heads=2, n_layers=1, max_len=8)
    train = TrainConfig(steps=4, eval_interval=2, eval_batches=1, device="cpu", progress=False, lr=1e-2)
    return Trainer(mt.GPT(cfg), task, train, tok, callback)


def ctrl_c_at(step, times=1):
    def callback(trainer):
        if trainer.step == step:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)

    return callback


def test_ctrl_c_stops_between_steps_and_the_run_resumes_exactly(task, tmp_path):
    whole = tiny_trainer(task)
    whole.fit()
    stopped = tiny_trainer(task, ctrl_c_at(1))
    with pytest.raises(KeyboardInterrupt):
        stopped.fit()
    assert stopped.interrupted and stopped.step == 1  # the step under way finished, no other began
    stopped.save(tmp_path / "stopped.st")
    resumed = Trainer.resume(tmp_path / "stopped.st", task[0])
    resumed.fit()
    for (name, a), (_, b) in zip(
        whole.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C is itself again


def test_a_second_ctrl_c_stops_at_once(task):
    trainer = tiny_trainer(task, ctrl_c_at(1, times=2))
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert not trainer.interrupted  # stopped inside the step: nothing consistent to save


def test_ctrl_c_on_the_command_line_saves_a_run_that_resumes(tmp_path):
    """shakespeare-char trains in two stages: stopped in stage 1, the printed command finishes stage 1 and
    then runs stage 2, into the --out of the first command."""
    out, stage1 = tmp_path / "run.st", tmp_path / "run.stage1.st"
    argv = [*TRAIN, "--steps", "100000", "--eval-interval", "1", "--out", str(out)]
    child = subprocess.Popen(
        [sys.executable, "-m", "minitransformer", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background shell ignores it
    )
    deadline = time.monotonic() + 60
    while not stage1.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # --eval-interval 1: the file appears after the first step
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert lines[0].startswith("training shakespeare-char (stage 1 of 2") and len(lines) == 2, stderr
    step = step_of(stage1)
    assert re.match(
        rf"minitransformer: interrupted: saved step {step} of 100000 to {re.escape(str(stage1))}; "
        "continue with: python -m minitransformer train ",
        lines[1],
    )
    again = shlex.split(lines[1].split("continue with: ")[1])[3:]
    assert vars(build_parser().parse_args(again)) | {"steps": None} == vars(
        build_parser().parse_args([*argv, "--resume", str(stage1), "--stage", "1"])
    ) | {"steps": None}
    assert main([*again, "--steps", str(step + 2)]) == 0  # stage 1 to step + 2, then stage 2 into --out
    assert step_of(stage1) == step + 2 and step_of(out) == step + 2
    assert read_metadata(out)["training_state"]["train_config"]["lr"] == 3e-4  # stage 2's settings


def test_readme_training_commands_name_out_and_parse():
    section = re.search(r"## Training\n(.*?)\n## ", (ROOT / "README.md").read_text(), re.S).group(1)
    commands = re.findall(r"^\.venv/bin/python -m minitransformer (train .*?)(?:\s+#.*)?$", section, re.M)
    assert commands
    for command in commands:
        argv = shlex.split(command)
        assert "--out" in argv, command
        build_parser().parse_args(argv)


@pytest.mark.parametrize("frozen", ["embed", ["no.such.weight"]])
def test_a_damaged_list_of_frozen_weights_is_a_checkpoint_error(task, tmp_path, frozen):
    trainer = tiny_trainer(task)
    trainer.save(tmp_path / "run.st")
    model, tok, state = mt.load_checkpoint(tmp_path / "run.st", return_state=True)
    training = state["training"] | {"frozen": frozen}
    mt.save_checkpoint(tmp_path / "run.st", model, tok, optimizer=trainer.optimizer, training_state=training)
    with pytest.raises(mt.CheckpointError, match="cannot resume from.*frozen"):
        Trainer.resume(tmp_path / "run.st", task[0])


def test_the_resume_command_keeps_the_options_and_drops_the_start():
    from minitransformer.tools.cli_train import resume_command

    argv = ["train", "--preset", "p", "--init-from", "base", "--out=my run.st", "--freeze-layers", "1"]
    assert resume_command(argv, "my run.st") == (
        "python -m minitransformer train --preset p --freeze-layers 1 --resume 'my run.st'"
    )
