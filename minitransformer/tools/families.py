"""Published GPT-family models as data: sizes with their sources, and their parameters counted by our GPT.

    m = FAMILY["GPT-3 175B"]
    count_parameters(m)            # 174,604,259,328: built on PyTorch's meta device, no memory used
    check_count(m, count)          # (published number, relative difference, within tolerance?)
    training_flops(count, m.tokens)   # 6·N·D (Kaplan et al. 2020, section 2.1)

Every number carries the source it was read from (paper and table or section). A count is checked
against the most precise published figure: the released checkpoints' own count where it differs
from the paper (GPT-2), else the paper's. Figures printed only as a model's name ("OPT-1.3B") have
two significant figures; there a count matches when it rounds to the name. Notebook 12 builds its
family table from these entries; tests/test_families.py checks every count, and checks ours against
Hugging Face's models where transformers has them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources

import torch

from ..config import TransformerConfig
from ..models import GPT

RADFORD_2018 = "Radford et al. 2018 (GPT), section 4.1"
RADFORD_2019 = "Radford et al. 2019 (GPT-2), Table 2 and section 2.3"
GPT2_README = "openai/gpt-2 README and download_model.py (the released checkpoints' names)"
BROWN_2020 = "Brown et al. 2020 (GPT-3), Table 2.1; parameters and compute from Table D.1"
SMITH_2022 = "Smith et al. 2022 (MT-NLG), arXiv:2201.11990, sections 3-4"
ZHANG_2022 = "Zhang et al. 2022 (OPT), arXiv:2205.01068, Table 1 and section 2.2"


@dataclass(frozen=True)
class PublishedModel:
    """One published model: its shape, its published size, tokens and compute, and where each was read."""

    name: str
    organisation: str
    year: int
    n_layers: int
    d_model: int
    n_heads: int
    context: int
    vocab_size: int
    params: str  # the parameter count as printed in the source: "1542M", "174,600M", "1.3B"
    source: str  # where the shape and `params` were read
    tokens: float | None = None  # training tokens; None where the source gives none
    tokens_source: str = ""
    flops: float | None = None  # published training compute in FLOPs; None where the source gives none
    flops_source: str = ""
    released: str | None = None  # the released checkpoints' own count, where it differs from `params`
    released_source: str = ""
    options: dict = field(default_factory=dict)  # further TransformerConfig fields (norm_first, ...)
    note: str = ""  # how the real model differs from our GPT, and what that does to the count


def _gpt2(size, n_layers, d_model, n_heads, paper, released):
    return PublishedModel(
        f"GPT-2 {size}", "OpenAI", 2019, n_layers, d_model, n_heads, 1024, 50257, paper,
        RADFORD_2019 + "; n_heads from the released hparams.json", released=released,
        released_source=GPT2_README, options={"activation": "gelu_tanh"},
        note="The paper's counts were wrong (the README says so); the released checkpoints are exact.",
    )


def _gpt3(size, n_layers, d_model, n_heads, params, flops, note="", build=None):
    sparse = "Alternate layers use locally banded sparse attention (section 2.1): same parameters, less compute."
    return PublishedModel(
        f"GPT-3 {size}", "OpenAI", 2020, n_layers, d_model, n_heads, 2048, 50257, params, BROWN_2020,
        tokens=300e9, tokens_source="Brown et al. 2020, section 2.2 and Table D.1", flops=flops,
        flops_source="Brown et al. 2020, Table D.1", options={"activation": "gelu_tanh", **(build or {})},
        note=f"{sparse} {note}".strip(),
    )


def _opt(size, n_layers, d_model, n_heads, note="", **options):
    return PublishedModel(
        f"OPT-{size}", "Meta AI", 2022, n_layers, d_model, n_heads, 2048, 50272, size, ZHANG_2022,
        options={"activation": "relu", "max_len": 2050, **options},
        note=("ReLU. The released embedding has 50,272 rows (GPT-2's vocabulary, padded) and the position "
              "table 2,050 (2 rows of offset). The paper reports no parameter count, only names; it states "
              "a corpus of ~180B tokens (section 2.3), not how many tokens each model saw. " + note).strip(),
    )


MODELS = [
    PublishedModel(
        "GPT-1", "OpenAI", 2018, 12, 768, 12, 512, 40478, "117M",
        RADFORD_2018 + "; 117M from Radford et al. 2019, Table 2 (the smallest size 'is equivalent to the "
        "original GPT'); vocabulary 40,478 = 478 base symbols + 40,000 merges",
        options={"norm_first": False},
        note="Post-LN blocks without a final LayerNorm (norm_first=False): GPT-2 moved the norms (2019, "
             "section 2.3). Trained for 100 epochs on BooksCorpus; the token count is not published.",
    ),
    _gpt2("Small", 12, 768, 12, "117M", "124M"),
    _gpt2("Medium", 24, 1024, 16, "345M", "355M"),
    _gpt2("Large", 36, 1280, 20, "762M", "774M"),
    _gpt2("XL", 48, 1600, 25, "1542M", "1558M"),
    _gpt3("Small", 12, 768, 12, "125M", 2.25e20),
    _gpt3("Medium", 24, 1024, 16, "356M", 6.41e20, "Table 2.1 rounds it to 350M."),
    _gpt3("Large", 24, 1536, 16, "760M", 1.37e21),
    _gpt3("XL", 24, 2048, 24, "1,320M", 2.38e21,
          "Table 2.1 prints 24 heads of 128 (3,072) for d_model 2,048; Table D.1's count fits a 2,048-wide "
          "attention, so we build 16 heads of 128 (the head count does not change the count).", build={"n_heads": 16}),
    _gpt3("2.7B", 32, 2560, 32, "2,650M", 4.77e21),
    _gpt3("6.7B", 32, 4096, 32, "6,660M", 1.20e22),
    _gpt3("13B", 40, 5120, 40, "12,850M", 2.31e22,
          "Table 2.1 prints d_model 5140, which 40 heads of 128 cannot make: 40 x 128 = 5120."),
    _gpt3("175B", 96, 12288, 96, "174,600M", 3.14e23, "Table 2.1 rounds it to 175.0B."),
    PublishedModel(
        "MT-NLG 530B", "NVIDIA and Microsoft", 2022, 105, 20480, 128, 2048, 50257, "530B", SMITH_2022,
        tokens=270e9, tokens_source="Smith et al. 2022, section 4 (270B of a 339B-token dataset)",
        options={"activation": "gelu_tanh"},
        note="Vocabulary assumed to be GPT-2's 50,257: the embedding is 0.2% of the model, so a vocabulary "
             "of similar size moves the total by far less than 1%. Weights never released.",
    ),
    _opt("125M", 12, 768, 12),
    _opt("350M", 24, 1024, 16, norm_first=False,
         note="OPT-350M alone is post-LN with 512-wide embeddings projected to 1,024 and back (released "
              "config.json: word_embed_proj_dim=512): our GPT cannot express that; see DIFFERENCES."),
    _opt("1.3B", 24, 2048, 32),
    _opt("6.7B", 32, 4096, 32),
    _opt("175B", 96, 12288, 96),
]
FAMILY = {m.name: m for m in MODELS}

# The one model here that our GPT cannot build: OPT-350M, counted by hand from its released config.json.
# Our closest GPT (post-LN, no final LayerNorm, d_model 1024 everywhere) differs by exactly these terms.
OPT_350M_RELEASED = 331_196_416  # facebook/opt-350m, counted by transformers' OPTForCausalLM (tests)
DIFFERENCES = {
    "OPT-350M": {
        "token embedding 512 wide, not 1,024": -50272 * (1024 - 512),
        "project_in and project_out, 512 x 1,024 each, no bias": 2 * 512 * 1024,
    }
}

_COUNT = re.compile(r"^(?P<digits>[\d,]+(?:\.(?P<decimals>\d+))?)(?P<unit>[MB])$")


def parse_count(text: str) -> tuple[float, float]:
    """'1,542M' -> (1.542e9, 5e5): the value and half a unit of its last printed digit."""
    match = _COUNT.match(text)
    if match is None:
        raise ValueError(f"a published count looks like '117M', '1.3B' or '174,600M', got {text!r}")
    unit = 1e6 if match["unit"] == "M" else 1e9
    last_digit = unit / 10 ** len(match["decimals"] or "")
    return float(match["digits"].replace(",", "")) * unit, last_digit / 2


def config(m: PublishedModel) -> TransformerConfig:
    """The TransformerConfig of our GPT closest to `m` (d_ff = 4 d_model, learned positions, tied output)."""
    fields = dict(vocab_size=m.vocab_size, d_model=m.d_model, n_heads=m.n_heads, n_layers=m.n_layers,
                  max_len=m.context)
    return TransformerConfig(**(fields | m.options))  # options override: OPT's 2,050 positions, say


def count_parameters(m: PublishedModel | TransformerConfig) -> int:
    """Parameters of our GPT for `m`, built on the meta device: shapes only, no memory, no arithmetic."""
    cfg = m if isinstance(m, TransformerConfig) else config(m)
    with torch.device("meta"):
        return GPT(cfg).num_parameters()


def check_count(m: PublishedModel, count: int) -> tuple[str, float, bool]:
    """(the figure compared with, (count - figure) / figure, whether they agree).

    Agree: within 1%, or within the rounding of the printed figure (a name like '1.3B').
    """
    figure = m.released or m.params
    value, half_unit = parse_count(figure)
    difference = count - value
    return figure, difference / value, abs(difference) <= max(0.01 * value, half_unit)


def training_flops(n_params: float, n_tokens: float) -> float:
    """C ≈ 6·N·D: 2 FLOPs per parameter per token forward (a multiply and an add), twice that backward
    (Kaplan et al. 2020, section 2.1; Brown et al. 2020, Appendix D). Attention's own FLOPs are left out."""
    return 6 * n_params * n_tokens


def load_scaling_results() -> dict:
    """The scaling experiment shipped with the package (benchmarks/scaling.py wrote it; notebook 12 reads it)."""
    text = resources.files("minitransformer").joinpath("assets/scaling_shakespeare.json").read_text("utf-8")
    return json.loads(text)
