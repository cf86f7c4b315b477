"""Data-parallel training on several processes with torch.distributed (DDP).

    torchrun --nproc_per_node=2 -m minitransformer train --preset shakespeare-char

torchrun starts the same program N times and tells each copy who it is through environment
variables: RANK (0..N-1 across all machines), LOCAL_RANK (0.. on this machine) and WORLD_SIZE (N),
plus MASTER_ADDR / MASTER_PORT, where rank 0 listens. Every copy then

    joins the process group           setup(): NCCL on CUDA GPUs (one GPU per process), gloo on CPUs
    builds the same model             DistributedDataParallel also copies rank 0's weights to all
    trains on its slice of the batch  shard(): rank r keeps rows [r*b, (r+1)*b) of the global batch
    averages gradients in backward    DDP all-reduces them, so every copy takes the same AdamW step

so N processes with b rows each train exactly like one process with N*b rows. Only rank 0 prints
and writes checkpoints (their weights are identical). Without torchrun's variables every helper
answers for a single process: rank 0 of a world of 1, and barrier() and cleanup() do nothing.
The trainer (trainer.py) calls these helpers; docs/multi_node.md shows the launch commands.
"""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ..errors import ConfigError

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def is_distributed() -> bool:
    """True once this process has joined a process group (setup() did, under torchrun)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's number, 0..world_size()-1; rank 0 does the printing and the saving."""
    if is_distributed():
        return dist.get_rank()
    return int(os.environ["RANK"]) if launched_by_torchrun() else 0


def world_size() -> int:
    """How many processes train together (1 without torchrun)."""
    if is_distributed():
        return dist.get_world_size()
    return int(os.environ["WORLD_SIZE"]) if launched_by_torchrun() else 1


def local_rank() -> int:
    """This process's number on its own machine: it picks the GPU, cuda:LOCAL_RANK."""
    return int(os.environ["LOCAL_RANK"]) if launched_by_torchrun() else 0


def is_main() -> bool:
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join the process group if torchrun started us; returns the device this process trains on.

    On CUDA each process takes its own GPU, cuda:LOCAL_RANK, and talks over NCCL; on the CPU the
    processes talk over gloo. Calling it again is harmless.
    """
    if not launched_by_torchrun():
        return device
    if device.type == "cuda":
        if local_rank() >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK={local_rank()} needs GPU cuda:{local_rank()}, but {torch.cuda.device_count()} "
                "GPU(s) are visible; start at most that many processes per machine (--nproc_per_node)"
            )
        device = torch.device("cuda", local_rank())
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ConfigError(
            f"multi-process training runs on CUDA GPUs (NCCL) or CPUs (gloo), got device {device}; "
            "pass --device cpu or --device cuda"
        )
    if not is_distributed():
        # MASTER_ADDR / MASTER_PORT (set by torchrun) say where to meet the other processes
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def cleanup():
    """Leave the process group once every process has finished (call it at the end of a script)."""
    if is_distributed():
        dist.barrier()  # e.g. wait for rank 0 to finish writing the last checkpoint
        dist.destroy_process_group()


def barrier():
    """Wait here until every process arrives."""
    if is_distributed():
        dist.barrier()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel(model) in a process group, the model itself otherwise."""
    if not is_distributed():
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def sync_gradients(model: torch.nn.Module, sync: bool):
    """Context for one micro-batch's forward and backward. With sync=False, DDP keeps the
    gradients local (no_sync) instead of all-reducing them: gradient accumulation only needs the
    sum after the last micro-batch, so the earlier ones skip the communication."""
    ddp = getattr(model, "_orig_mod", model)  # look inside torch.compile's wrapper
    if sync or not isinstance(ddp, DistributedDataParallel):
        return contextlib.nullcontext()
    return ddp.no_sync()


def shard(batch: dict) -> dict:
    """This process's rows of a global batch: rank r of N keeps rows [r*b, (r+1)*b), b = B // N.

    Every process draws the same global batch (same seed), so the shards are disjoint and
    together they are exactly the batch one process would have trained on.
    """
    n, r = world_size(), rank()
    if n == 1:
        return batch
    rows = len(next(iter(batch.values())))
    if rows % n:
        raise ConfigError(
            f"the global batch has {rows} rows, which {n} processes cannot share equally; "
            f"use a batch size divisible by {n} (the command line's --batch-size is per process)"
        )
    b = rows // n
    return {k: v[r * b : (r + 1) * b] for k, v in batch.items()}


def average(value: float) -> float:
    """The mean of a number over all processes (e.g. each one's loss on its shard)."""
    if not is_distributed():
        return value
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)  # sum over processes
    return t.item() / world_size()
