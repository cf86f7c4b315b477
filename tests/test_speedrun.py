"""The speedrun's parts: a time budget that holds, a schedule that ends with it, Muon with AdamW, the preset.

Wall-time tests use tiny models (a step takes milliseconds), so that the budget's tolerance stays small
even on a busy machine.
"""

import json
import math
import time
from pathlib import Path

import pytest
import torch

import minitransformer as mt
from minitransformer.data import ascii_tokenizer, load_text, train_val_split
from minitransformer.tools import presets
from minitransformer.tools.cli import main
from minitransformer.tools.training_tasks import CausalLMTask
from minitransformer.training import TrainConfig, Trainer, lr_at
from minitransformer.training.checkpoints import load_checkpoint, read_metadata
from minitransformer.training.optim import MuonWithAdamW, TimeBudget, build_optimizer, muon_param_groups

ROOT = Path(__file__).resolve().parents[1]
TOK = ascii_tokenizer()
FINAL_SAVE_TOLERANCE = 0.5  # seconds past the budget allowed for a busy machine's last step and save


@pytest.fixture(scope="module")
def task():
    train, val = train_val_split(load_text("shakespeare")[:60_000])
    return CausalLMTask(torch.tensor(TOK.encode(train)), torch.tensor(TOK.encode(val)), context=16, batch_size=8)


def tiny(tie_weights=True):
    torch.manual_seed(0)
    config = mt.TransformerConfig(
        vocab_size=TOK.vocab_size, d_model=32, n_heads=2, n_layers=2, max_len=16, tie_weights=tie_weights
    )
    return mt.GPT(config)


def cfg(**kw):
    base = dict(steps=60, lr=3e-3, warmup_steps=5, eval_interval=30, eval_batches=4, progress=False)
    return TrainConfig(**(base | kw))


# ----------------------------------------------------------------------------- the time budget


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_a_time_budget_stops_the_run_in_time_with_the_lr_at_its_end(task, tmp_path, schedule):
    path = tmp_path / "run.safetensors"
    config = cfg(steps=10**6, time_budget=3.0, min_lr=3e-4, lr_schedule=schedule, checkpoint_path=str(path))
    trainer = Trainer(tiny(), task, config)
    start = time.perf_counter()
    history = trainer.fit()
    seconds = time.perf_counter() - start
    assert seconds <= 3.0 + FINAL_SAVE_TOLERANCE, f"a 3 s budget took {seconds:.2f} s"
    assert seconds >= 2.0, f"stopped after {seconds:.2f} s of a 3 s budget"  # the budget is used, not wasted
    assert trainer.step > 20 and "val_loss" in history[-1]  # the final evaluation ...
    assert load_checkpoint(path, return_state=True)[2]["training"]["step"] == trainer.step  # ... and save
    # the decay follows the time: at the last step the lr has (nearly) reached min_lr
    assert history[-1]["lr"] - 3e-4 <= 0.05 * (3e-3 - 3e-4), history[-1]["lr"]
    lrs = [h["lr"] for h in history[config.warmup_steps :]]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))  # and falls all the way, step after step


def test_a_budget_counts_time_from_an_earlier_start(task):
    trainer = Trainer(tiny(), task, cfg(steps=10**6, time_budget=2.0))
    trainer.started = time.perf_counter() - 1.0  # as if the set-up had taken a second
    history = trainer.fit()
    assert history[-1]["time"] <= 2.0 + FINAL_SAVE_TOLERANCE and history[0]["time"] >= 1.0
    assert trainer.started is None  # used once: a second fit() continues from the history's time


def test_a_resumed_run_keeps_counting_its_time(task, tmp_path):
    path = tmp_path / "run.safetensors"
    first = Trainer(tiny(), task, cfg(steps=10**6, time_budget=1.5, checkpoint_path=str(path)))
    used = first.fit()[-1]["time"]
    resumed = Trainer.resume(path, task, cfg(steps=10**6, time_budget=3.0))
    history = resumed.fit()
    assert history[len(first.history)]["time"] > used  # the clock went on from where the run stopped
    assert history[-1]["time"] <= 3.0 + FINAL_SAVE_TOLERANCE


@pytest.mark.parametrize("bad", [0, -3, math.nan, math.inf, "300", True])
def test_a_bad_time_budget_is_a_clear_error(bad):
    with pytest.raises(mt.ConfigError, match=r"time_budget must be a finite number > 0, got .*seconds"):
        TrainConfig(time_budget=bad)


def test_the_budget_reserves_the_measured_evaluation():
    clock = TimeBudget(100.0, eval_batches=10)
    assert clock.room_for_a_step() and clock.reserve() == 0.0
    clock.stepped(5.0)  # the first step: slow, and replaced by the second in the estimate
    clock.stepped(0.1)
    assert clock.step_seconds == pytest.approx(0.1)
    assert clock.reserve() == pytest.approx(TimeBudget.SAFETY * 10 * TimeBudget.FORWARD_SHARE * 0.1)
    clock.finish_seconds = 2.0  # once measured, the measurement counts
    assert clock.reserve() == pytest.approx(TimeBudget.SAFETY * 2.0)
    clock.start -= 97.0  # 97 s gone: a 0.1 s step and a 3 s reserve no longer fit
    assert not clock.room_for_a_step() and clock.progress() == 1.0


# ----------------------------------------------------------------------------- the schedule


def test_the_schedules_decay_by_steps_or_by_time():
    for schedule, middle in (("linear", 0.55), ("cosine", 0.55), ("constant", 1.0)):
        c = TrainConfig(steps=100, lr=1.0, min_lr=0.1, warmup_steps=10, lr_schedule=schedule)
        assert lr_at(4, c) == pytest.approx(0.5)  # the warmup is in steps
        assert lr_at(55, c) == pytest.approx(middle)  # halfway through the steps after it
        assert lr_at(20, c, progress=0.5) == pytest.approx(middle)  # halfway through the time
        assert lr_at(90, c, progress=0.1) == pytest.approx(lr_at(90, c))  # whichever is further on
    linear = TrainConfig(steps=100, lr=1.0, min_lr=0.0, warmup_steps=0, lr_schedule="linear")
    assert [lr_at(0, linear, p) for p in (0.25, 1.0, 1.5)] == pytest.approx([0.75, 0.0, 0.0])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(lr_schedule="wsd"), r"lr_schedule must be one of \('cosine', 'linear', 'constant'\)"),
        (dict(optimizer="sgd"), r"optimizer must be one of \('adamw', 'muon'\)"),
        (dict(min_lr=-1e-4), r"min_lr must be a number in \[0, lr=0.001\], got -0.0001"),
        (dict(min_lr=0.5), r"min_lr must be a number in \[0, lr=0.001\]"),
        (dict(optimizer="muon", precision="float16"), "use precision='bfloat16'"),
    ],
)
def test_bad_schedule_and_optimizer_settings(kwargs, match):
    with pytest.raises(mt.ConfigError, match=match):
        TrainConfig(**kwargs)


# ----------------------------------------------------------------------------- Muon with AdamW


@pytest.mark.parametrize("tie_weights", [True, False])
def test_muon_takes_the_hidden_matrices_and_adamw_the_rest(tie_weights):
    model = tiny(tie_weights)
    muon, adamw = muon_param_groups(model, 0.1)
    names = {id(p): name for name, p in model.named_parameters()}
    hidden = sorted(names[id(p)] for g in muon for p in g["params"])
    rest = sorted(names[id(p)] for g in adamw for p in g["params"])
    expected = sorted(
        f"blocks.{i}.{layer}.weight"
        for i in range(2)
        for layer in ("self_attn.w_q", "self_attn.w_k", "self_attn.w_v", "self_attn.w_o", "ffn.linear1", "ffn.linear2")
    )
    assert hidden == expected
    assert sorted(hidden + rest) == sorted(names.values())  # every parameter, once
    assert ("lm_head.weight" in rest) != tie_weights  # untied: the output layer is AdamW's
    assert all(p.ndim == 2 for g in muon for p in g["params"])


def test_muon_with_adamw_steps_as_the_two_torch_optimizers_would(task):
    """The reference: torch.optim.Muon on the hidden matrices and AdamW on the rest, written out by hand."""
    ours, reference = tiny(), tiny()
    config = cfg(optimizer="muon", lr=2e-3, weight_decay=0.1)
    combined = build_optimizer(ours, config)
    assert isinstance(combined, MuonWithAdamW)
    hidden, rest = muon_param_groups(reference, 0.1)
    by_hand = [
        torch.optim.Muon(hidden, lr=2e-3, weight_decay=0.1, adjust_lr_fn="match_rms_adamw"),
        torch.optim.AdamW(rest, lr=2e-3, betas=(0.9, 0.99)),
    ]
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        batch = task.batch("train", g)
        for model, optimizers in ((ours, [combined]), (reference, by_hand)):
            task.loss(model, batch)[0].backward()
            for opt in optimizers:
                opt.step()
                opt.zero_grad()
    for (name, a), b in zip(ours.state_dict().items(), reference.state_dict().values(), strict=True):
        # Muon orthogonalises in bfloat16: summation-order noise in a gradient can flip a rounding, which
        # moves a weight by ~3e-5; a wrong lr rule or a wrong split moves weights by 4e-4 and more
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=lambda m, name=name: f"{name}: {m}")


def test_muon_trains_and_resumes_exactly(task, tmp_path):
    straight = Trainer(tiny(), task, cfg(optimizer="muon", steps=40, eval_interval=20))
    history = straight.fit()
    assert history[-1]["val_loss"] < math.log(TOK.vocab_size) - 1.0  # the loss fell well below chance
    path = tmp_path / "run.safetensors"
    first = Trainer(tiny(), task, cfg(optimizer="muon", steps=40, eval_interval=20, checkpoint_path=str(path)))
    first.fit(until=20)
    resumed = Trainer.resume(path, task, cfg(optimizer="muon", steps=40, eval_interval=20))
    resumed.fit()
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in history]


# ----------------------------------------------------------------------------- the preset and the CLI


def test_the_speedrun_preset_is_what_it_says():
    model, _, _, config = presets.build("shakespeare-char-speedrun")
    assert config.time_budget == 300.0 and config.optimizer == "muon" and config.lr_schedule == "linear"
    assert config.precision in ("float32", "bfloat16")  # "auto", decided on this machine
    assert config.precision == ("bfloat16" if presets.bfloat16_is_faster() else "float32")
    assert model.config.dropout == 0.0 and model.lm_head.weight is model.embed.tokens.weight


def test_the_speedrun_command_with_a_seconds_long_budget(tmp_path, capsys):
    out = tmp_path / "speedrun.safetensors"
    argv = ["train", "--preset", "shakespeare-char-speedrun", "--out", out, "--no-progress"]
    argv += ["--time-budget", "6", "--d-model", "32", "--n-layers", "1", "--eval-batches", "2", "--threads", "1"]
    start = time.perf_counter()
    assert main(argv) == 0
    seconds = time.perf_counter() - start
    assert seconds <= 6 + FINAL_SAVE_TOLERANCE, seconds
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["threads"] == 1 and summary["steps"] >= 2 and summary["val_loss"] < math.log(TOK.vocab_size)
    training = read_metadata(out)
    assert training["metrics"]["val_loss"] == pytest.approx(summary["val_loss"], abs=1e-4)


def test_a_resume_whose_budget_is_spent_is_refused(tmp_path, capsys):
    out = tmp_path / "run.safetensors"
    small = ["--d-model", "16", "--n-layers", "1", "--eval-batches", "1", "--no-progress", "--threads", "1"]
    assert main(["train", "--preset", "shakespeare-char-speedrun", "--out", out, "--time-budget", "4", *small]) == 0
    capsys.readouterr()
    resume = ["train", "--preset", "shakespeare-char-speedrun", "--resume", out, "--time-budget", "1", *small]
    assert main(resume) == 2
    assert "argument --time-budget: the run in" in capsys.readouterr().err


def test_without_torch_muon_the_preset_falls_back_to_adamw_and_says_so(monkeypatch):
    monkeypatch.delattr(torch.optim, "Muon")
    with pytest.warns(UserWarning, match="has no torch.optim.Muon: preset 'shakespeare-char-speedrun' trains with"):
        model, _, _, config = presets.build("shakespeare-char-speedrun")
    assert config.optimizer == "adamw"
    with pytest.raises(mt.ConfigError, match=r"optimizer='muon' needs torch.optim.Muon.*use optimizer='adamw'"):
        build_optimizer(model, TrainConfig(optimizer="muon"))


def test_the_shipped_ablation_table_is_the_committed_measurements():
    """minitransformer/assets/speedrun_ablations.json (notebook 07 plots it) copies the benchmark's results."""
    from minitransformer.tools.presets import speedrun_measurements

    results = ROOT / "benchmarks" / "results" / "speedrun"
    shipped = speedrun_measurements()
    assert {r["base"] for r in shipped["runs"]} <= {"context 128", "preset"}
    for run in shipped["runs"]:
        if run["source"] == "README.md":
            assert f"| {run['steps']} |" in (results / "README.md").read_text() and str(run["val_loss"]) in (
                results / "README.md"
            ).read_text()
            continue
        measured = json.loads((results / run["source"]).read_text())["metrics"][run["name"]]
        assert (run["steps"], run["tokens"]) == (measured["steps"], measured["tokens"])
        assert run["val_loss"] == round(measured["val_loss"], 4)
