"""viz/architecture.py: the block diagram says what the model's config and modules say, and its counts add up."""

import dataclasses

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.patches import FancyBboxPatch
from matplotlib.text import Text
from torch import nn

import minitransformer as mt
from minitransformer.viz import parameter_parts, plot_architecture

plt.switch_backend("Agg")  # no windows, whatever the environment says
CFG = mt.TransformerConfig(vocab_size=37, d_model=24, n_heads=3, n_layers=3, d_ff=40, max_len=20)
MODELS = (mt.GPT, mt.MaskedLM, mt.Seq2SeqTransformer)
VARIANTS = [  # every switch the diagram reads from the config
    {},
    {"norm_first": False},
    {"pos_encoding": "sinusoidal", "tie_weights": False},
    {"pos_encoding": "rope", "activation": "relu"},
    {"pos_encoding": "none", "bias": False},
]
# the parts a parameter name belongs to, by its first component(s): an independent count from named_parameters()
PREFIXES = {"embed.tokens": "token embedding", "embed.positions": "positions", "blocks": "blocks",
            "encoder": "encoder blocks", "decoder": "decoder blocks", "norm_f": "final LayerNorm",
            "encoder_norm": "encoder final LayerNorm", "decoder_norm": "decoder final LayerNorm",
            "head_dense": "MLM head dense + LayerNorm", "head_norm": "MLM head dense + LayerNorm",
            "lm_head": "output layer"}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def texts(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]


def all_text(fig) -> str:
    return "\n".join(t.get_text() for t in texts(fig))


def block_order(fig, x_min=None) -> list[str]:
    """The kinds of the sub-layer boxes inside the drawn block, bottom to top (x_min: only that column)."""
    kinds = {"LayerNorm": "norm", "masked self-attention": "attn", "self-attention": "attn",
             "cross-attention": "cross", "feed-forward": "ffn"}
    rows = []
    for t in texts(fig):
        x, y = t.get_position()
        label = next((kind for start, kind in kinds.items() if t.get_text().startswith(start)), None)
        if label and (x_min is None or x > x_min):
            rows.append((y, label))
    return [label for _, label in sorted(rows)]


def forward_order(block, *inputs) -> list[str]:
    """The kinds of the block's sub-modules in the order its forward actually calls them."""
    calls = []
    for name, module in block.named_children():
        kind = "norm" if name.startswith("norm") else {"self_attn": "attn", "cross_attn": "cross", "ffn": "ffn"}.get(name)
        if kind:
            module.register_forward_hook(lambda *_, kind=kind: calls.append(kind))
    with torch.no_grad():
        block(*inputs)
    return calls


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: ",".join(f"{k}={v}" for k, v in v.items()) or "default")
def test_the_text_states_the_config(variant):
    cfg = dataclasses.replace(CFG, **variant)
    for model_class in MODELS:
        text = all_text(plot_architecture(model_class(cfg)))
        assert f"{cfg.n_layers} ×" in text and f"{cfg.n_heads} heads × d_head {cfg.d_head}" in text
        assert f"d_model {cfg.d_model}" in text and f"d_ff {cfg.d_ff}" in text
        assert f"feed-forward {cfg.d_model} → {cfg.d_ff} → {cfg.d_model}" in text
        assert ("pre-LN" in text) == cfg.norm_first and ("post-LN" in text) == (not cfg.norm_first)
        assert {"learned": "learned positions", "sinusoidal": "sinusoidal positions", "rope": "RoPE",
                "none": "no positional encoding"}[cfg.pos_encoding] in text
        assert ("GELU" if cfg.activation == "gelu" else "ReLU") in text
        assert ("weight tied to embedding" in text) == cfg.tie_weights
        assert ("cross-attention" in text) == (model_class is mt.Seq2SeqTransformer)
        assert ("masked self-attention" in text) == (model_class is not mt.MaskedLM)
        assert ("final LayerNorm" in text) == cfg.norm_first  # a post-LN stack ends normalised already
        assert f"{model_class(cfg).num_parameters():,} parameters" in text


@pytest.mark.parametrize("norm_first", [True, False])
def test_the_sublayers_are_drawn_in_the_order_forward_runs_them(norm_first):
    cfg = dataclasses.replace(CFG, norm_first=norm_first)
    x, memory = torch.randn(1, 4, cfg.d_model), torch.randn(1, 5, cfg.d_model)
    gpt, s2s = mt.GPT(cfg).eval(), mt.Seq2SeqTransformer(cfg).eval()
    assert block_order(plot_architecture(gpt)) == forward_order(gpt.blocks[0], x)
    fig = plot_architecture(s2s)
    middle = fig.get_figwidth() / 2  # the decoder is the right-hand column
    assert block_order(fig, x_min=middle) == forward_order(s2s.decoder[0], x, memory)
    assert forward_order(s2s.decoder[0], x, memory)[:2] == (["norm", "attn"] if norm_first else ["attn", "norm"])


@pytest.mark.parametrize("variant", VARIANTS[:4], ids=["default", "post-LN", "untied", "rope"])
@pytest.mark.parametrize("model_class", MODELS)
def test_counts_sum_to_the_total_and_match_named_parameters(model_class, variant):
    model = model_class(dataclasses.replace(CFG, **variant))
    parts = parameter_parts(model)
    assert sum(parts.values()) == model.num_parameters() and "other" not in parts
    independent = dict.fromkeys(parts, 0)
    for name, p in model.named_parameters():  # a tied weight is listed once, under the embedding
        part = PREFIXES.get(".".join(name.split(".")[:2])) or PREFIXES[name.split(".")[0]]
        independent[part] += p.numel()
    assert parts == independent
    text = all_text(plot_architecture(model))
    for part, n in parts.items():
        assert f"{n:,}" in text, part
    block = model.decoder[0] if model_class is mt.Seq2SeqTransformer else model.blocks[0]
    per_block = sum(p.numel() for p in block.parameters())
    assert f"{model.config.n_layers} blocks × {per_block:,} =" in text


def test_a_meta_device_gpt2_124m_draws_without_memory():
    cfg = mt.TransformerConfig(vocab_size=50257, d_model=768, n_heads=12, n_layers=12, max_len=1024,
                               activation="gelu_tanh")
    with torch.device("meta"):
        model = mt.GPT(cfg)
    assert all(p.is_meta for p in model.parameters())
    fig = plot_architecture(model)
    assert sum(parameter_parts(model).values()) == 124_439_808
    text = all_text(fig)
    assert "124,439,808 parameters" in text and "12 ×" in text and "GELU (tanh)" in text
    assert "38,597,376" in text  # the token table, 50257 × 768; the tied output layer adds 0


@pytest.mark.parametrize("model_class", MODELS)
def test_text_is_legible_and_never_overlaps(model_class):
    for variant in ({}, {"norm_first": False, "pos_encoding": "rope"}):
        fig = plot_architecture(model_class(dataclasses.replace(CFG, **variant)))
        renderer = fig.canvas.get_renderer()
        boxes = [(t, t.get_window_extent(renderer)) for t in texts(fig)]
        page = fig.bbox
        for i, (t, box) in enumerate(boxes):
            assert t.get_fontsize() >= 8, t.get_text()
            assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, t.get_text()
            for other, other_box in boxes[i + 1:]:
                assert not box.overlaps(other_box), (t.get_text(), other.get_text())
        for patch in fig.axes[0].patches:  # a label inside a box stays inside it
            if isinstance(patch, FancyBboxPatch):
                frame = patch.get_window_extent(renderer)
                inside = [box for _, box in boxes if frame.contains(*box.get_points().mean(axis=0))]
                assert len(inside) == 1 and frame.x0 < inside[0].x0 and inside[0].x1 < frame.x1


def test_draws_on_given_axes():
    fig, ax = plt.subplots(figsize=(6, 8))
    assert plot_architecture(mt.GPT(CFG), ax=ax) is fig
    assert "masked self-attention" in all_text(fig)


def test_bad_input_is_a_clear_type_error():
    for bad in ("gpt", nn.Linear(2, 2), None, mt.GPT):
        with pytest.raises(TypeError, match="model must be an mt.GPT, mt.MaskedLM or mt.Seq2SeqTransformer"):
            plot_architecture(bad)
        with pytest.raises(TypeError, match="model must be"):
            parameter_parts(bad)
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        plot_architecture(mt.GPT(CFG), ax="left")
