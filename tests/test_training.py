"""The trainer: the loss falls, resume is bit-exact, divergence stops with a clear message."""

import math

import pytest
import torch

import minitransformer as mt
from minitransformer.data import ascii_tokenizer, load_text, train_val_split
from minitransformer.tools.training_tasks import CausalLMTask
from minitransformer.training import TrainConfig, Trainer, lr_at, param_groups, pick_device
from minitransformer.training.checkpoints import load_checkpoint

TOK = ascii_tokenizer()


@pytest.fixture(scope="module")
def task():
    train, val = train_val_split(load_text("shakespeare")[:60_000])
    return CausalLMTask(
        torch.tensor(TOK.encode(train)), torch.tensor(TOK.encode(val)), context=16, batch_size=8
    )


def tiny(dropout=0.1):
    return mt.GPT(
        mt.TransformerConfig(
            vocab_size=TOK.vocab_size, d_model=32, n_heads=2, n_layers=2, max_len=16, dropout=dropout
        )
    )


def cfg(**kw):
    return TrainConfig(
        **(dict(steps=60, lr=3e-3, warmup_steps=5, eval_interval=30, eval_batches=4, progress=False) | kw)
    )


def test_loss_falls(task):
    history = Trainer(tiny(), task, cfg()).fit()
    assert history[-1]["val_loss"] < math.log(TOK.vocab_size) - 1.0  # well below uniform guessing
    assert [h["step"] for h in history] == list(range(1, 61))
    assert "val_loss" in history[29] and "val_loss" not in history[30]


def test_resume_is_bit_exact(task, tmp_path):
    torch.manual_seed(0)
    straight = Trainer(tiny(), task, cfg(steps=40, eval_interval=20))
    straight.fit()
    torch.manual_seed(0)
    first = Trainer(
        tiny(), task, cfg(steps=40, eval_interval=20, checkpoint_path=str(tmp_path / "run.safetensors"))
    )
    first.fit(until=20)  # as if the run had been stopped here
    resumed = Trainer.resume(tmp_path / "run.safetensors", task, cfg(steps=40, eval_interval=20))
    resumed.fit()
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in straight.history]
    for (name, a), (_, b) in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_divergence_stops_with_a_clear_message_and_keeps_the_checkpoint(task, tmp_path):
    path = tmp_path / "run.safetensors"
    trainer = Trainer(tiny(), task, cfg(steps=30, eval_interval=10, checkpoint_path=str(path)))
    original_loss = task.loss

    def exploding(model, batch):
        loss, extra = original_loss(model, batch)
        return (loss * math.nan if trainer.step >= 15 else loss), extra

    trainer.task.loss = exploding
    try:
        with pytest.raises(mt.TrainingDivergedError, match=r"at step 16 .*smaller lr"):
            trainer.fit()
    finally:
        trainer.task.loss = original_loss
    model, _, state = load_checkpoint(path, return_state=True)
    assert state["training"]["step"] == 10 and not any(p.isnan().any() for p in model.parameters())


def test_schedule_and_weight_decay_groups():
    c = TrainConfig(steps=100, lr=1.0, warmup_steps=10, min_lr=0.1)
    assert lr_at(0, c) == pytest.approx(0.1) and lr_at(9, c) == pytest.approx(1.0)
    assert lr_at(55, c) == pytest.approx(0.55) and lr_at(100, c) == pytest.approx(0.1)
    model = tiny()
    decay, no_decay = param_groups(model, 0.1)
    decayed = {id(p) for p in decay["params"]}
    assert id(model.embed.tokens.weight) not in decayed and id(model.embed.positions.weight) not in decayed
    assert (
        id(model.blocks[0].self_attn.w_q.weight) in decayed
        and id(model.blocks[0].self_attn.w_q.bias) not in decayed
    )
    assert id(model.blocks[0].norm1.weight) not in decayed
    n_params = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert n_params == model.num_parameters()


def test_bfloat16_autocast_trains(task):
    history = Trainer(tiny(0.0), task, cfg(precision="bfloat16", steps=30)).fit()
    assert history[-1]["val_loss"] < math.log(TOK.vocab_size) - 0.5


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(steps=0), "steps must be a positive integer"),
        (dict(lr=-1), "lr must be a finite number > 0"),
        (dict(precision="fp8"), "precision must be one of"),
        (dict(grad_clip=0), "grad_clip must be a finite number > 0"),
    ],
)
def test_bad_train_config(kwargs, match):
    with pytest.raises(mt.ConfigError, match=match):
        TrainConfig(**kwargs)


def test_device_auto_is_cpu_here():
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    assert pick_device("cpu").type == "cpu"
    with pytest.raises(mt.ConfigError, match="device must be"):
        pick_device("gpu0")


def test_same_seed_gives_the_same_losses_and_text(task):
    def run():
        torch.manual_seed(0)  # the model's initial weights
        trainer = Trainer(tiny(), task, cfg(steps=12, eval_interval=6))
        history = trainer.fit()
        prompt = torch.tensor([TOK.encode("ROMEO:")])
        text = mt.generate(
            trainer.model,
            prompt,
            do_sample=True,
            max_new_tokens=8,
            generator=torch.Generator().manual_seed(1),
        )
        return [h["train_loss"] for h in history], text.tolist()

    assert run() == run()


def test_adamw_is_fused_where_torch_has_it_and_matches_the_foreach_update():
    from minitransformer.training import adamw

    torch.manual_seed(0)
    w = torch.randn(4, 3)
    a, b = w.clone().requires_grad_(), w.clone().requires_grad_()
    fused = adamw([{"params": [a], "weight_decay": 0.1}], lr=1e-2)
    plain = torch.optim.AdamW([{"params": [b], "weight_decay": 0.1}], lr=1e-2, foreach=True)
    assert fused.defaults["fused"] is True  # torch >= 2.4 on CPU
    for _ in range(3):
        grad = torch.randn(4, 3)
        a.grad, b.grad = grad.clone(), grad.clone()
        fused.step()
        plain.step()
    torch.testing.assert_close(a, b)


def test_adamw_falls_back_to_foreach_where_fused_is_missing(monkeypatch):
    from minitransformer import training

    real = torch.optim.AdamW

    def old_torch(params, fused=None, **kw):  # torch < 2.4 refused fused=True for CPU tensors
        optimizer = real(params, fused=fused, **kw)
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be CUDA, floating point Tensor")
        return optimizer

    monkeypatch.setattr(torch.optim, "AdamW", old_torch)
    p = torch.zeros(2, requires_grad=True)
    optimizer = training.adamw([{"params": [p], "weight_decay": 0.0}], lr=0.1)
    assert optimizer.defaults["foreach"] is True and not optimizer.param_groups[0]["fused"]
