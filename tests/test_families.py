"""The published family table (tools/families.py) and the shipped scaling experiment (benchmarks/scaling.py).

Counts are checked three ways: against the published figure (within 1%, or the rounding of a name),
against Hugging Face's own models built from the same configuration on the meta device (exactly),
and, for GPT-3, against the compute of Table D.1, which was computed from its parameter column.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers as hf

import minitransformer as mt
from minitransformer.tools import families

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `benchmarks` is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import scaling  # noqa: E402

EXPRESSIBLE = [m for m in families.MODELS if m.name not in families.DIFFERENCES]


def hf_count(model_class, config) -> int:
    with torch.device("meta"):
        return model_class(config).num_parameters()


@pytest.mark.parametrize("m", EXPRESSIBLE, ids=lambda m: m.name)
def test_count_agrees_with_the_published_figure(m):
    count = families.count_parameters(m)
    figure, relative, ok = families.check_count(m, count)
    assert ok, f"{m.name}: ours {count:,} vs published {figure} ({relative:+.2%})"
    if "." not in figure:  # a figure printed to three or more digits: within 1%
        assert abs(relative) < 0.01


def test_only_opt_350m_cannot_be_built_and_its_difference_is_exact():
    assert list(families.DIFFERENCES) == ["OPT-350M"]
    ours = families.count_parameters(families.FAMILY["OPT-350M"])
    corrected = ours + sum(families.DIFFERENCES["OPT-350M"].values())
    config = hf.OPTConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, ffn_dim=4096,
                          word_embed_proj_dim=512, do_layer_norm_before=False, vocab_size=50272)
    assert corrected == families.OPT_350M_RELEASED == hf_count(hf.OPTForCausalLM, config)
    assert not families.check_count(families.FAMILY["OPT-350M"], ours)[2]  # the name is not a count


@pytest.mark.parametrize("name", ["GPT-2 Small", "GPT-2 Medium", "GPT-2 Large", "GPT-2 XL"])
def test_gpt2_counts_equal_hugging_face(name):
    m = families.FAMILY[name]
    config = hf.GPT2Config(n_layer=m.n_layers, n_embd=m.d_model, n_head=m.n_heads, n_positions=m.context,
                           vocab_size=m.vocab_size)
    assert families.count_parameters(m) == hf_count(hf.GPT2LMHeadModel, config)


def test_gpt1_and_opt_counts_equal_hugging_face():
    gpt1 = hf.OpenAIGPTConfig(n_layer=12, n_embd=768, n_head=12, n_positions=512, vocab_size=40478)
    assert families.count_parameters(families.FAMILY["GPT-1"]) == hf_count(hf.OpenAIGPTLMHeadModel, gpt1)
    for name, layers, width, heads in [("OPT-125M", 12, 768, 12), ("OPT-1.3B", 24, 2048, 32)]:
        config = hf.OPTConfig(hidden_size=width, num_hidden_layers=layers, num_attention_heads=heads,
                              ffn_dim=4 * width, word_embed_proj_dim=width, vocab_size=50272)
        assert families.count_parameters(families.FAMILY[name]) == hf_count(hf.OPTForCausalLM, config), name


def test_gpt2_paper_counts_are_gpt1_vocabulary_and_context():
    """The paper's 117M/345M/762M/1542M are reproduced (to 0.5%) with GPT-1's 40,478 tokens and 512 positions."""
    for name in ["GPT-2 Small", "GPT-2 Medium", "GPT-2 Large", "GPT-2 XL"]:
        m = families.FAMILY[name]
        cfg = families.config(m)
        old = families.count_parameters(mt.TransformerConfig(**(cfg.to_dict() | {"vocab_size": 40478,
                                                                                  "max_len": 512})))
        paper, _ = families.parse_count(m.params)
        assert abs(old - paper) / paper < 0.005, (name, old, paper)
        assert families.count_parameters(m) > paper * 1.009  # and the released models are all bigger


def test_gpt3_compute_is_six_n_d_of_table_d1():
    for m in families.MODELS:
        if m.flops is None:
            continue
        published, _ = families.parse_count(m.params)
        assert f"{families.training_flops(published, m.tokens):.2e}" == f"{m.flops:.2e}", m.name
        ours = families.training_flops(families.count_parameters(m), m.tokens)
        assert abs(ours / m.flops - 1) < 0.01, m.name


def test_parse_count():
    assert families.parse_count("1,542M") == (1.542e9, 5e5)
    assert families.parse_count("1.3B") == (1.3e9, 5e7)
    assert families.parse_count("530B") == (530e9, 5e8)
    with pytest.raises(ValueError, match="'1.3 billion'"):
        families.parse_count("1.3 billion")


def test_configs_are_our_gpt_with_the_published_shape():
    opt = families.config(families.FAMILY["OPT-175B"])
    assert (opt.n_layers, opt.d_model, opt.n_heads, opt.max_len, opt.activation) == (96, 12288, 96, 2050, "relu")
    gpt1 = families.config(families.FAMILY["GPT-1"])
    assert gpt1.norm_first is False and gpt1.tie_weights is True
    small = mt.TransformerConfig(vocab_size=10, d_model=8, n_heads=2, n_layers=1, max_len=4)
    assert families.count_parameters(small) == mt.GPT(small).num_parameters()


# ----------------------------------------------------------------------------- the scaling experiment


def test_power_law_fit_recovers_a_known_exponent():
    n = [1e3, 1e4, 1e5, 1e6]
    loss = [(8.8e13 / x) ** 0.076 for x in n]  # Kaplan et al. 2020's L(N)
    alpha, n_c = scaling.fit_power_law(n, loss)
    assert math.isclose(alpha, 0.076, rel_tol=1e-9) and math.isclose(n_c, 8.8e13, rel_tol=1e-6)


def test_shipped_results_match_the_code_that_made_them():
    results = families.load_scaling_results()
    assert results["command"] == scaling.COMMAND and results["smoke"] is False
    assert results["settings"] == scaling.TRAIN
    models = results["metrics"]["models"]
    assert [(m["d_model"], m["n_layers"], m["n_heads"]) for m in models] == scaling.SIZES
    for m in models:
        cfg = mt.TransformerConfig(vocab_size=96, d_model=m["d_model"], n_layers=m["n_layers"],
                                   n_heads=m["n_heads"], max_len=scaling.TRAIN["context"])
        model = mt.GPT(cfg)
        assert m["parameters"] == model.num_parameters()
        assert m["non_embedding_parameters"] == scaling.non_embedding_parameters(model)
        assert m["tokens"] == scaling.TRAIN["steps"] * scaling.TRAIN["batch_size"] * scaling.TRAIN["context"]
        assert 0 < m["val_loss"] < math.log(96)  # better than a uniform guess over 96 characters
    alpha, n_c = scaling.fit_power_law([m["non_embedding_parameters"] for m in models],
                                       [m["val_loss"] for m in models])
    assert math.isclose(alpha, results["metrics"]["fit"]["alpha"]) and alpha > 0


def test_scaling_smoke_run_writes_the_same_format(tmp_path):
    out = tmp_path / "scaling.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.scaling", "--smoke", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    smoke = json.loads(out.read_text())
    shipped = families.load_scaling_results()
    assert smoke["smoke"] is True and set(smoke) == set(shipped)
    assert len(smoke["metrics"]["models"]) == len(scaling.SIZES)
    assert all(math.isfinite(m["val_loss"]) for m in smoke["metrics"]["models"])
