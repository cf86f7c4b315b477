"""Multi-process training: 2 processes under torchrun train exactly like 1 with the global batch.

The real launcher runs the real command line: `python -m torch.distributed.run --nproc_per_node=2
-m minitransformer train ...` (gloo on the CPU), against the same command in one process with
twice the per-process batch. Both runs stop after 3 steps and are resumed to 6, so one pair of
launches checks the equality, the resume and that only rank 0 prints.
"""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

import minitransformer as mt
from minitransformer.data import ascii_tokenizer, load_text, train_val_split
from minitransformer.tools.cli import main
from minitransformer.tools.training_tasks import CausalLMTask
from minitransformer.training import TrainConfig, Trainer, distributed
from minitransformer.training.checkpoints import load_checkpoint

TOK = ascii_tokenizer()
TINY = ["--d-model", "16", "--n-heads", "2", "--n-layers", "1", "--max-len", "16", "--dropout", "0"]
TINY += ["--precision", "float32", "--no-progress"]
# a real lr from step 1 so that 3 steps move the weights; grad_accum 2 exercises DDP's no_sync
RUN = ["--preset", "shakespeare-char-large", "--lr", "1e-2", "--warmup-steps", "1", "--grad-accum", "2"]
RUN += ["--eval-interval", "3", "--eval-batches", "2", *TINY]
TOLERANCE = dict(rtol=1e-5, atol=1e-5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args, log_dir, nproc=2):
    """Launch `python -m minitransformer train ARGS` in `nproc` processes; per-rank output in log_dir."""
    command = [
        *(sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"),
        *("--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}"),
        *("--log-dir", str(log_dir), "--redirects", "3"),  # rank r's stdout -> log_dir/.../r/stdout.log
        *("-m", "minitransformer", "train", *args),
    ]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    out = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return {int(p.parent.name): p.read_text() for p in log_dir.glob("*/attempt_0/*/stdout.log")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """3 steps, then resumed to 6: in 1 process with batch 8, in 2 processes with batch 4 each."""
    tmp = tmp_path_factory.mktemp("runs")

    def args(batch, name, steps, resume=None):  # writes tmp/NAME-STEPS.safetensors
        out = ["--out", str(tmp / f"{name}-{steps}.safetensors")]
        resume = ["--resume", str(tmp / resume)] if resume else []
        return [*RUN, "--batch-size", str(batch), "--steps", str(steps), *out, *resume]

    assert main(["train", *args(8, "one", 3)]) == 0
    assert main(["train", *args(8, "one", 6, resume="one-3.safetensors")]) == 0
    stdout = torchrun(args(4, "two", 3), tmp / "logs-3")
    torchrun(args(4, "two", 6, resume="two-3.safetensors"), tmp / "logs-6")
    return tmp, stdout


def assert_same_run(path_a, path_b):
    model_a, _, state_a = load_checkpoint(path_a, return_state=True)
    model_b, _, state_b = load_checkpoint(path_b, return_state=True)
    history_a, history_b = state_a["training"]["history"], state_b["training"]["history"]
    assert [h["step"] for h in history_a] == [h["step"] for h in history_b]
    for key in ("train_loss", "val_loss"):
        a = torch.tensor([h[key] for h in history_a if key in h], dtype=torch.float64)
        b = torch.tensor([h[key] for h in history_b if key in h], dtype=torch.float64)
        torch.testing.assert_close(a, b, **TOLERANCE, msg=lambda m, key=key: f"{key}: {m}")
    for (name, a), (_, b) in zip(model_a.state_dict().items(), model_b.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, **TOLERANCE, msg=lambda m, name=name: f"{name}: {m}")
    return history_a


def test_two_processes_train_like_one_process_with_the_global_batch(runs):
    tmp, _ = runs
    history = assert_same_run(tmp / "one-3.safetensors", tmp / "two-3.safetensors")
    assert [h["step"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"] - 0.05  # it really trained


def test_two_processes_resume_like_one_process(runs):
    tmp, _ = runs
    history = assert_same_run(tmp / "one-6.safetensors", tmp / "two-6.safetensors")
    assert [h["step"] for h in history] == [1, 2, 3, 4, 5, 6]


def test_only_rank_0_prints(runs):
    _, stdout = runs
    assert sorted(stdout) == [0, 1] and stdout[1] == ""
    assert json.loads(stdout[0].strip().splitlines()[-1])["steps"] == 3


@pytest.fixture(scope="module")
def task():
    train, val = train_val_split(load_text("shakespeare")[:20_000])
    ids = [torch.tensor(TOK.encode(text)) for text in (train, val)]
    return CausalLMTask(*ids, context=8, batch_size=4)


def tiny():
    torch.manual_seed(0)  # the same initial weights every time
    cfg = mt.TransformerConfig(vocab_size=TOK.vocab_size, d_model=16, n_heads=2, n_layers=1, max_len=8)
    return mt.GPT(cfg)


def quick(**kw):
    return TrainConfig(**(dict(steps=2, eval_interval=2, eval_batches=1, device="cpu", progress=False) | kw))


def test_only_rank_0_writes_checkpoints(task, tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "rank", lambda: 1)  # as if this were the second process
    Trainer(
        tiny(),
        task,
        quick(checkpoint_path=str(tmp_path / "a.safetensors"), best_path=str(tmp_path / "b.safetensors")),
    ).fit()
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(distributed, "rank", lambda: 0)
    Trainer(tiny(), task, quick(checkpoint_path=str(tmp_path / "a.safetensors"))).fit()
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]


def test_the_trainer_trains_on_its_own_rows(task, monkeypatch):
    """Process 1 of 2 draws the same global batch as everyone and keeps its second half."""
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    seen, real_loss = [], task.loss

    def loss(model, batch):
        seen.append(batch["x"])
        return real_loss(model, batch)

    monkeypatch.setattr(task, "loss", loss)
    Trainer(tiny(), task, quick(steps=1, eval_batches=1, seed=5)).fit()
    everyone = task.batch("train", torch.Generator().manual_seed(5))["x"]  # (4, T), the global batch
    assert torch.equal(seen[0], everyone[2:])


def test_each_rank_gets_its_own_rows_of_the_global_batch(monkeypatch):
    batch = {"x": torch.arange(12).view(6, 2), "y": torch.arange(6)}
    monkeypatch.setattr(distributed, "world_size", lambda: 3)
    shards = []
    for r in range(3):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        shards.append(distributed.shard(batch))
    for key in batch:
        assert torch.equal(torch.cat([s[key] for s in shards]), batch[key])  # disjoint, and all of it
    with pytest.raises(mt.ConfigError, match="divisible by 3"):
        distributed.shard({"x": torch.zeros(4, 2)})


def test_one_process_without_torchrun(monkeypatch):
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not distributed.is_distributed() and distributed.rank() == 0 and distributed.world_size() == 1
    assert distributed.setup(torch.device("cpu")) == torch.device("cpu")
    distributed.barrier()  # nothing to wait for
    distributed.cleanup()
    assert distributed.average(2.5) == 2.5


def test_float16_needs_cuda(task):
    with pytest.raises(mt.ConfigError, match="float16 needs a CUDA GPU; use bfloat16 on CPU"):
        Trainer(tiny(), task, quick(precision="float16"))


@pytest.mark.slow  # the first compile took ~25 s on a busy 2-core CPU; from inductor's cache ~4 s
@pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("c++") is None,
    reason="torch.compile's CPU backend (inductor) needs a C++ compiler, and none is installed",
)
def test_compile_trains_like_eager(task):
    eager = Trainer(tiny(), task, quick(precision="float32")).fit()
    compiled = Trainer(tiny(), task, quick(precision="float32", compile=True)).fit()
    losses = [[h["train_loss"] for h in history] for history in (eager, compiled)]
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-4, atol=1e-4)


def test_two_processes_train_a_preset_in_stages(tmp_path):
    """Stage 2 starts from the checkpoint rank 0 wrote at the end of stage 1 (a barrier waits for it)."""
    out = tmp_path / "char.safetensors"
    args = ["--preset", "shakespeare-char", "--steps", "2", "--eval-interval", "2", "--batch-size", "2", *TINY]
    stdout = torchrun([*args, "--out", str(out)], tmp_path / "logs")
    stages = [json.loads(line)["stage"] for line in stdout[0].splitlines() if line.startswith("{")]
    assert stages == [1, 2] and stdout[1] == ""
    assert load_checkpoint(out)[0].config.dropout == 0.0  # (TINY's --dropout 0 applies to every stage)
    assert (tmp_path / "char.stage1.best.safetensors").is_file()


def test_compile_flag_reaches_the_trainer(monkeypatch):
    seen = []

    def fit(trainer):  # stands in for training: we only check what the command line asked for
        seen.append((trainer.cfg.compile, trainer.train_model is not trainer.model))
        return [{"step": 1, "val_loss": 1.0}]

    monkeypatch.setattr(Trainer, "fit", fit)
    assert main(["train", "--preset", "shakespeare-char-large", "--compile", "--steps", "1", *TINY]) == 0
    assert seen == [(True, True)]  # compiled for training, the plain model kept for checkpoints


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
def test_float16_with_grad_scaler_on_cuda(task, tmp_path):
    path = tmp_path / "fp16.safetensors"
    trainer = Trainer(
        tiny(),
        task,
        quick(
            device="cuda", precision="float16", steps=20, lr=1e-2, warmup_steps=2, checkpoint_path=str(path)
        ),
    )
    history = trainer.fit()
    assert trainer.scaler.is_enabled() and history[-1]["train_loss"] < history[0]["train_loss"]
    resumed = Trainer.resume(
        path, task, quick(device="cuda", precision="float16", steps=25, lr=1e-2, warmup_steps=2)
    )
    assert resumed.scaler.get_scale() == trainer.scaler.get_scale()  # the loss scale was saved
    resumed.fit()


@cuda
def test_nccl_on_every_gpu(runs, tmp_path):
    """torchrun with one process per GPU (NCCL, cuda:LOCAL_RANK) matches the CPU runs' numbers."""
    n = min(2, torch.cuda.device_count())
    out = tmp_path / "gpu.safetensors"
    torchrun(
        [*RUN, "--device", "cuda", "--batch-size", str(8 // n), "--steps", "3", "--out", str(out)],
        tmp_path / "logs",
        nproc=n,
    )
    model, _, state = load_checkpoint(out, return_state=True)
    reference, _, _ = load_checkpoint(runs[0] / "one-3.safetensors", return_state=True)
    for (name, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=lambda m, name=name: f"{name}: {m}")
