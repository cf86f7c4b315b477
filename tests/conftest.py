"""Shared test settings: small, seeded, CPU-only tensors, and three hypothesis profiles.

The property tests (hypothesis) run under one of these profiles; tests leave the number of
examples to the profile, so that one switch decides how hard they look:

    dev        the default on a workstation: 20 random examples per test, a new draw each run;
               a failing example is saved in .hypothesis/ and replayed first next time
    ci         the default when CI=true (or HYPOTHESIS_PROFILE=ci, as .ci/run sets): 50 random
               examples per test, a new seed each run, nothing saved; a failure prints the seed
               and the example needed to reproduce it
    thorough   thousands of examples per test, to hunt for bugs before a release (minutes):

        pytest --hypothesis-profile=thorough tests/test_fuzz.py tests/test_logits.py \
            tests/test_generation.py tests/test_reliability_generation.py tests/test_tokenizers.py \
            tests/test_reliability_tokenizers.py tests/test_objectives.py

`--hypothesis-profile=NAME` (or HYPOTHESIS_PROFILE=NAME) chooses one explicitly, and
`--hypothesis-seed=N` repeats a run: no profile is derandomized, so the seed decides the examples.
"""

import os

import pytest
import torch
from hypothesis import settings

from minitransformer.data import load_text

os.environ.setdefault("MPLBACKEND", "Agg")

# Hypothesis loads its own derandomized "ci" profile when it sees CI=true: start from its defaults instead.
_base = dict(parent=settings.get_profile("default"), deadline=None, derandomize=False)
settings.register_profile("dev", max_examples=20, **_base)
settings.register_profile("ci", max_examples=50, database=None, print_blob=True, **_base)
settings.register_profile("thorough", max_examples=2000, print_blob=True, **_base)
_in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# --hypothesis-profile, when given, is applied after this and wins.
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if _in_ci else "dev"))


# Tiny tensors run fastest on one thread, and one thread gives the same floating-point sums on
# every machine (reductions split across threads round differently).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def text():
    """The bundled Tiny Shakespeare corpus, the tokenizer tests' real text."""
    return load_text("shakespeare")
