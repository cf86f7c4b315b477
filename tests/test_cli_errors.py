"""The command line's front door: one-line errors that name the flag, --debug, help texts, --version."""

import argparse

import pytest
import torch

import minitransformer as mt
from minitransformer.errors import ConfigError
from minitransformer.tools.cli import build_parser, main
from minitransformer.tools.cli_options import speak_flags

TINY = ["--d-model", "16", "--n-heads", "2", "--n-layers", "1", "--max-len", "16", "--batch-size", "4"]
TINY += ["--steps", "1", "--eval-batches", "1", "--no-progress", "--precision", "float32"]
T = ["train", "--preset", "shakespeare-char", *TINY[:8], *TINY[10:]]  # all of TINY but its batch size
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("minitransformer: error: ")
    return err[0]


@pytest.mark.parametrize(
    "argv,flag,allowed",
    [
        ([*T, "--batch-size", "0"], "--batch-size", "a positive integer"),
        ([*T, "--steps", "many"], "--steps", "a positive integer"),
        ([*T, "--lr", "nan"], "--lr", "a finite number > 0"),
        ([*T, "--dropout", "1"], "--dropout", "[0, 1)"),
        ([*T, "--device", "banana"], "--device", "auto, cpu, cuda"),
        pytest.param([*T, "--device", "cuda"], "--device", "--device cpu", marks=no_cuda),
        (["train", "--preset", "nope"], "--preset", "shakespeare-char"),
        (["generate", "--top-p", "2"], "--top-p", "(0, 1]"),
        (["generate", "--temperature", "0"], "--temperature", "> 0"),
        (["generate", "--max-new-tokens", "-1"], "--max-new-tokens", "a positive integer"),
        (["generate", "--num-beams", "0"], "--num-beams", "a positive integer"),
        (["generate", "--top-k", "-1"], "--top-k", "an integer >= 0"),
    ],
)
def test_a_bad_value_is_refused_in_one_line_naming_the_flag(argv, flag, allowed, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    line = one_error_line(capsys)
    assert f"argument {flag}:" in line and allowed in line


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["generate", "--prompt", ""], ["--prompt", "empty"]),
        (["generate", "--prompt", "caf\u00e9"], ["--prompt", "'\u00e9'"]),
        (["generate", "--model", "nope"], ["--model", "'nope'", "shakespeare-mlm", "dates-seq2seq"]),
        (["generate", "--model", __file__], ["--model", "test_cli_errors.py"]),  # not a checkpoint
        (
            ["generate", "--model", "shakespeare-mlm", "--top-k", "1000"],
            ["--top-k must be an integer in [1, "],
        ),
        # keywords deep inside the package come out as flags: d_model=65 -> --d-model=65
        ([*T, "--d-model", "65"], ["--d-model=65", "--n-heads=2"]),
        ([*T, "--preset", "dates-seq2seq", "--corpus", "python"], ["--corpus='python'", "shakespeare-mlm"]),
        ([*T, "--freeze-layers", "1"], ["argument --freeze-layers:", "--init-from"]),
        (
            [*T, "--init-from", "shakespeare-char", "--freeze-layers", "2"],
            ["--freeze-layers: must be in [0, 1]"],
        ),
        pytest.param([*T, "--precision", "float16"], ["--precision", "bfloat16"], marks=no_cuda),
    ],
)
def test_an_error_found_later_is_one_line_too(argv, expected, capsys, tmp_path):
    if argv[0] == "train":
        argv = [*argv, "--out", str(tmp_path / "run.safetensors")]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert all(part in line for part in expected), line


def test_debug_shows_the_traceback_instead(capsys):
    with pytest.raises(ConfigError, match="--prompt"):
        main(["generate", "--prompt", "", "--debug"])
    with pytest.raises(ConfigError, match="--prompt"):
        main(["--debug", "generate", "--prompt", ""])  # before the command, too


def test_keywords_become_flags_only_where_they_are_keywords():
    flags = {
        "max_new_tokens": "--max-new-tokens",
        "device": "--device",
        "model": "--model",
        "top_k": "--top-k",
    }
    assert speak_flags("max_new_tokens must be a positive integer, got -1", flags) == (
        "--max-new-tokens must be a positive integer, got -1"
    )
    assert speak_flags("device='cuda', but no CUDA: use device='cpu'", flags) == (
        "--device='cuda', but no CUDA: use --device='cpu'"
    )
    assert speak_flags("the model in eval mode; pass src_ids=(B, S)", flags) == (
        "the model in eval mode; pass src_ids=(B, S)"
    )
    assert speak_flags("unknown:\n  a\n  b", flags) == "unknown: a b"  # one line


def commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {"": parser, **sub.choices}


@pytest.mark.parametrize("command", ["", "train", "generate", "export"])
def test_every_option_has_help_with_its_default(command):
    for action in commands()[command]._actions:
        if not action.option_strings or action.dest in ("help", "version"):
            continue
        assert action.help, f"{command} {action.option_strings[0]} has no help"
        assert "default" in action.help or "required" in action.help, (
            f"{action.option_strings[0]}: {action.help}"
        )


def test_model_help_lists_the_bundled_models():
    model = next(a for a in commands()["generate"]._actions if a.dest == "model")
    assert all(name in model.help for name in mt.PRETRAINED)


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"minitransformer {mt.__version__}"


def test_a_warning_is_one_line(capsys):
    # 60 new tokens can outrun the 48-token context of the dates model: generate warns
    assert main(["generate", "--model", "dates-seq2seq", "--max-new-tokens", "60"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == "2021-03-05"
    assert [line.split(":")[:2] for line in out.err.strip().splitlines()] == [["minitransformer", " warning"]]


def test_out_of_gpu_memory_is_one_line_with_the_fix(monkeypatch, capsys, tmp_path):
    def no_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 2.00 GiB.\nallocator stats..."
        )

    monkeypatch.setattr(mt.Trainer, "fit", no_memory)
    assert main([*T, "--out", str(tmp_path / "run.st")]) == 2
    training, error = capsys.readouterr().err.strip().splitlines()  # what trains, then the error
    assert error.startswith("minitransformer: error: the GPU ran out of memory") and "--batch-size" in error
