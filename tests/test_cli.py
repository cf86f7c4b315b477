"""The command line trains, resumes, fine-tunes, exports and generates."""

import dataclasses
import json
import subprocess
import sys

import pytest

import minitransformer as mt
from minitransformer.tools.cli import main
from minitransformer.training import TrainConfig, Trainer
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
    # the run resumes (e.g. after Ctrl-C) with the same layers frozen: they have no optimizer state
    resume = ["train", "--preset", "shakespeare-char", "--corpus", "python", "--resume", str(tuned), *TINY]
    assert main([*resume, "--steps", "8"]) == 0
    resumed, _ = mt.load_checkpoint(tuned)
    assert read_metadata(tuned)["training_state"]["step"] == 8
    assert (before.blocks[0].ffn.linear1.weight == resumed.blocks[0].ffn.linear1.weight).all()
    assert not (after.norm_f.weight == resumed.norm_f.weight).all()


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


@pytest.fixture(scope="module")
def mlm_run(tmp_path_factory):
    """A 2-step masked-LM run saved to a file."""
    run = tmp_path_factory.mktemp("mlm") / "mlm.safetensors"
    assert main(["train", "--preset", "shakespeare-mlm", "--out", str(run), "--steps", "2", *TINY[2:]]) == 0
    return run


@pytest.mark.parametrize("option", ["--resume", "--init-from"])
def test_a_checkpoint_of_another_preset_is_refused_naming_both(mlm_run, option, capsys):
    capsys.readouterr()
    assert main(["train", "--preset", "shakespeare-char", option, str(mlm_run), *TINY]) == 2  # as argparse
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("minitransformer: error: ")
    assert "a MaskedLM trained with preset 'shakespeare-mlm'" in err
    assert "preset 'shakespeare-char' trains a GPT" in err
    assert "use --preset shakespeare-mlm" in err


def test_resume_checks_the_tokenizer_too(mlm_run, tmp_path, capsys):
    model, tokenizer = mt.load_checkpoint(mlm_run)
    other = mt.CharTokenizer(tokenizer.chars[:-1], special_tokens=tokenizer.special_tokens)  # one id fewer
    path = tmp_path / "other-vocabulary.safetensors"
    the_same_but = mt.MaskedLM(dataclasses.replace(model.config, vocab_size=other.vocab_size))
    Trainer(the_same_but, None, TrainConfig(progress=False), other).save(path)  # a run at step 0
    capsys.readouterr()
    assert main(["train", "--preset", "shakespeare-mlm", "--resume", str(path), *TINY]) == 2
    err = capsys.readouterr().err
    assert "uses another tokenizer (vocab_size=97) than preset 'shakespeare-mlm' (vocab_size=98)" in err


def test_a_missing_checkpoint_is_a_one_line_error(tmp_path, capsys):
    missing = str(tmp_path / "nope.safetensors")
    assert main(["train", "--preset", "shakespeare-char", "--resume", missing, *TINY]) == 2
    assert main(["generate", "--model", missing]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("nope.safetensors" in line for line in err)
