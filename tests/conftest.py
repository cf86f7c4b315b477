"""Shared test settings: small, seeded, CPU-only, deterministic."""

import os

import pytest
import torch
from hypothesis import settings

os.environ.setdefault("MPLBACKEND", "Agg")
settings.register_profile("default", max_examples=25, deadline=None, derandomize=True)
settings.load_profile("default")


# Tiny tensors run fastest on one thread, and one thread gives the same floating-point sums on
# every machine (reductions split across threads round differently).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
