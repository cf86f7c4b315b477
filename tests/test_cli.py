"""The command line trains, resumes, fine-tunes, exports and generates."""

import json
import subprocess
import sys

import pytest

import minitransformer as mt
from minitransformer.tools.cli import main
from minitransformer.training.checkpoints import read_metadata

TINY = [
    "--steps",
    "6",
    "--eval-interval",
    "3",
    "--eval-batches",
    "1",
    "--d-model",
    "16",
    "--n-heads",
    "2",
    "--n-layers",
    "1",
    "--max-len",
    "16",
    "--batch-size",
    "4",
    "--no-progress",
    "--precision",
    "float32",
]


def test_train_resume_export_generate(tmp_path, capsys):
    run = tmp_path / "run.safetensors"
    assert main(["train", "--preset", "shakespeare-char", "--out", str(run), "--steps", "3", *TINY[2:]]) == 0
    assert read_metadata(run)["training_state"]["step"] == 3
    assert (
        main(["train", "--preset", "shakespeare-char", "--resume", str(run), "--out", str(run), *TINY]) == 0
    )
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["steps"] == 6 and result["val_loss"] > 0
    small = tmp_path / "small.safetensors"
    assert main(["export", str(run), str(small), "--half"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 6
    assert small.stat().st_size < run.stat().st_size / 2  # no optimizer state, half precision
    assert main(["generate", "--model", str(small), "--prompt", "ROMEO:", "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("ROMEO:")


def test_fine_tune_from_a_checkpoint_with_frozen_layers(tmp_path):
    base = tmp_path / "base.safetensors"
    assert main(["train", "--preset", "shakespeare-char", "--out", str(base), *TINY]) == 0
    tuned = tmp_path / "tuned.safetensors"
    args = [
        "train",
        "--preset",
        "shakespeare-char",
        "--corpus",
        "python",
        "--init-from",
        str(base),
        "--freeze-layers",
        "1",
        "--out",
        str(tuned),
        *TINY,
    ]
    assert main(args) == 0
    before, _ = mt.load_checkpoint(base)
    after, _ = mt.load_checkpoint(tuned)
    assert (before.blocks[0].ffn.linear1.weight == after.blocks[0].ffn.linear1.weight).all()  # frozen
    assert (before.embed.tokens.weight == after.embed.tokens.weight).all()  # embeddings frozen too
    assert not (before.norm_f.weight == after.norm_f.weight).all()  # the rest trained


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "minitransformer", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "train" in out.stdout and "generate" in out.stdout


@pytest.mark.parametrize(
    "argv,message",
    [(["train", "--preset", "nope"], "invalid choice"), (["train"], "required"), (["fly"], "invalid choice")],
)
def test_bad_command_lines(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err
