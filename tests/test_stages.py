"""Early stopping (TrainConfig.patience) and presets trained in stages (one command, several runs)."""

import json

import pytest
import torch

import minitransformer as mt
from minitransformer.tools import cli_stages, presets
from minitransformer.tools.cli import main
from minitransformer.tools.training_tasks import CausalLMTask
from minitransformer.training import TrainConfig, Trainer
from minitransformer.training.checkpoints import read_metadata

TINY = ["--d-model", "16", "--n-heads", "2", "--n-layers", "1", "--max-len", "16", "--batch-size", "4"]
TINY += ["--eval-batches", "1", "--no-progress", "--precision", "float32", "--threads", "1"]


# ----------------------------------------------------------------------------- early stopping


@pytest.fixture(scope="module")
def task():
    tok = mt.data.ascii_tokenizer()
    train, val = mt.train_val_split(mt.load_text("shakespeare")[:20_000])
    return CausalLMTask(*(torch.tensor(tok.encode(t)) for t in (train, val)), context=8, batch_size=4), tok


def scripted_trainer(task, losses, **train):
    """A tiny trainer whose evaluations return `losses`, in turn (one evaluation per step)."""
    task, tok = task
    cfg = mt.TransformerConfig(vocab_size=tok.vocab_size, d_model=16, n_heads=2, n_layers=1, max_len=8)
    settings = dict(steps=len(losses), eval_interval=1, eval_batches=1, device="cpu", progress=False) | train
    trainer = Trainer(mt.GPT(cfg), task, TrainConfig(**settings), tok)
    scripted = iter(losses)
    trainer.evaluate = lambda: {"val_loss": next(scripted)}
    return trainer


def patience_stop(losses, patience):
    """The naive rule: the step after which `patience` evaluations in a row brought no new best."""
    best, waited = float("inf"), 0
    for step, loss in enumerate(losses, 1):
        best, waited = min(best, loss), 0 if loss < best else waited + 1
        if waited >= patience:
            return step
    return len(losses)


@pytest.mark.parametrize("patience", [1, 2, 3])
def test_patience_stops_after_that_many_evaluations_without_a_new_best(task, tmp_path, patience):
    losses = [3.0, 2.0, 2.5, 1.9, 2.0, 2.1, 2.2, 1.0, 0.5]
    trainer = scripted_trainer(task, losses, patience=patience, best_path=str(tmp_path / "best.st"))
    trainer.fit()
    assert trainer.step == patience_stop(losses, patience) < len(losses)
    assert read_metadata(tmp_path / "best.st")["metrics"]["val_loss"] == min(losses[: trainer.step])


def test_without_patience_the_run_goes_to_its_last_step(task):
    trainer = scripted_trainer(task, [3.0, 2.0, 2.5, 2.6, 2.7, 2.8])
    trainer.fit()
    assert trainer.step == 6


def test_a_resumed_run_keeps_its_best_loss_and_its_patience(task, tmp_path):
    """The best loss and the evaluations since it come back from the saved history: --best-out is not
    overwritten by a worse model, and patience counts on."""
    first = scripted_trainer(task, [3.0, 2.0, 2.5], patience=2, best_path=str(tmp_path / "best.st"))
    first.fit(until=3)
    first.save(tmp_path / "run.st")
    resumed = Trainer.resume(tmp_path / "run.st", task[0], first.cfg)
    assert (resumed.best_val_loss, resumed.evals_since_best) == (2.0, 1)
    scripted = iter([2.2, 1.0])
    resumed.evaluate = lambda: {"val_loss": next(scripted)}
    resumed.cfg.steps = 5
    resumed.fit()
    assert resumed.step == 4  # 2.5 then 2.2: two evaluations without a new best
    assert read_metadata(tmp_path / "best.st")["metrics"]["val_loss"] == 2.0


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_patience_must_be_a_positive_integer(bad):
    with pytest.raises(mt.ConfigError, match="patience"):
        TrainConfig(patience=bad)


# ----------------------------------------------------------------------------- stages


def test_a_stage_changes_only_what_it_names():
    p = presets.PRESETS["shakespeare-char"]
    two = presets.at_stage(p, 2)
    assert two.model == p.model | {"dropout": 0.1}
    assert two.train == p.train | {"steps": 750, "lr": 3e-4, "warmup_steps": 50, "eval_interval": 125} | {
        "patience": None
    }
    assert presets.at_stage(p, 1) is p
    with pytest.raises(mt.ConfigError, match=r"stage must be in \[1, 2\].*got 3"):
        presets.at_stage(p, 3)


def test_stage_files_sit_beside_out():
    assert cli_stages.stage_path("runs/char.safetensors", 1) == "runs/char.stage1.safetensors"
    assert cli_stages.stage_path("runs/char.safetensors", 1, best=True) == "runs/char.stage1.best.safetensors"


def run_json(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]


def test_one_command_trains_every_stage_from_the_previous_ones_checkpoint(tmp_path, capsys, monkeypatch):
    out, best = tmp_path / "char.safetensors", tmp_path / "char.best.safetensors"
    starts = []
    real_init_from = presets.init_from
    monkeypatch.setattr(presets, "init_from", lambda source, *a: starts.append(source) or real_init_from(source, *a))
    argv = ["train", "--preset", "shakespeare-char", *TINY, "--steps", "4", "--eval-interval", "2"]
    assert main([*argv, "--out", str(out), "--best-out", str(best)]) == 0
    runs = run_json(capsys)
    assert [r["stage"] for r in runs] == [1, 2] and runs[1]["out"] == str(out)
    assert starts == [str(tmp_path / "char.stage1.best.safetensors")]  # stage 2 starts from stage 1's best
    stage2 = read_metadata(out)["training_state"]["train_config"]
    assert (stage2["lr"], stage2["warmup_steps"], stage2["patience"]) == (3e-4, 50, None)
    assert read_metadata(out)["config"]["dropout"] == 0.1 and best.is_file()
    assert read_metadata(tmp_path / "char.stage1.safetensors")["config"]["dropout"] == 0.0
    # --stage 2 runs stage 2 again, from the same files; the mlm preset starts from stage 1's last
    assert main([*argv, "--out", str(out), "--stage", "2"]) == 0
    assert starts[-1] == str(tmp_path / "char.stage1.best.safetensors")
    mlm = tmp_path / "mlm.safetensors"
    assert main(["train", "--preset", "shakespeare-mlm", *TINY, "--steps", "2", "--out", str(mlm)]) == 0
    assert starts[-1] == str(tmp_path / "mlm.stage1.safetensors")


def test_fine_tuning_with_a_staged_preset_is_one_run(tmp_path, capsys):
    base = tmp_path / "base.safetensors"
    argv = ["train", "--preset", "shakespeare-char", *TINY, "--steps", "2"]
    assert main([*argv, "--out", str(base)]) == 0
    capsys.readouterr()
    tuned = tmp_path / "tuned.safetensors"
    assert main([*argv, "--init-from", str(base), "--out", str(tuned)]) == 0
    assert [set(r) >= {"steps"} and "stage" not in r for r in run_json(capsys)] == [True]
    assert not (tmp_path / "tuned.stage1.safetensors").exists()


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--stage", "3"], "argument --stage: preset 'shakespeare-char' trains in 2 stages, got 3"),
        (["--stage", "2"], "argument --stage: stage 2 of 'shakespeare-char' starts from stage 1's checkpoint"),
        (["--stage", "0"], "argument --stage: must be a positive integer, got '0'"),
    ],
)
def test_a_stage_that_cannot_run_is_one_line(tmp_path, capsys, extra, expected):
    argv = ["train", "--preset", "shakespeare-char", *TINY, "--out", str(tmp_path / "x.safetensors"), *extra]
    try:
        status = main(argv)
    except SystemExit as e:  # (argparse's own checks exit)
        status = e.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_every_bundled_model_card_gives_one_training_command_that_parses():
    """MODEL_CARDS.md: one `train` command per bundled model trained with a preset, no fine-tuning by hand."""
    import re
    import shlex
    from pathlib import Path

    from minitransformer.tools.cli import build_parser

    cards = (Path(mt.__file__).parent / "pretrained" / "MODEL_CARDS.md").read_text()
    commands = re.findall(r"^python -m minitransformer (train .*)$", cards, re.M)
    presets_used = [build_parser().parse_args(shlex.split(c, comments=True)).preset for c in commands]
    assert sorted(presets_used) == ["dates-seq2seq", "shakespeare-char", "shakespeare-mlm", "tang-poetry-char"]
    assert not any("--init-from" in c or "--stage" in c for c in commands)


def test_a_new_run_without_out_never_takes_the_name_of_a_run_stopped_in_stage_1(tmp_path, monkeypatch):
    from minitransformer.tools.cli_train import _default_out

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "shakespeare-char.stage1.safetensors").write_bytes(b"")
    assert _default_out("shakespeare-char") == "runs/shakespeare-char-2.safetensors"
