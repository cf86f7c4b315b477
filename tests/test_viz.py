"""viz.py: every plot draws what it says (cells, labels, kept bars, tree nodes), on tiny inputs."""

import html
import re
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.text import Annotation

import minitransformer as mt
from minitransformer import viz
from minitransformer.errors import ShapeError
from minitransformer.generation import generate, next_token_distribution

plt.switch_backend("Agg")  # no windows, whatever the environment says
TOK = mt.CharTokenizer.from_text("abcdefghij klmnop")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def gpt():
    torch.manual_seed(0)
    cfg = mt.TransformerConfig(vocab_size=TOK.vocab_size, d_model=16, n_heads=2, n_layers=2, max_len=32)
    model = mt.GPT(cfg).eval()
    torch.nn.init.normal_(model.embed.tokens.weight, std=1.0)  # peaked logits: a less uniform model
    return model


def tick_texts(labels):
    return [t.get_text() for t in labels]


def test_plot_attention_one_cell_per_query_key_pair():
    weights = torch.rand(3, 4).softmax(dim=-1)
    ax = viz.plot_attention(weights, "abc", "defg", title="t")
    np.testing.assert_allclose(ax.images[0].get_array(), weights.numpy(), rtol=1e-6)
    assert ax.images[0].get_array().shape == (3, 4)
    assert tick_texts(ax.get_yticklabels()) == list("abc")
    assert tick_texts(ax.get_xticklabels()) == list("defg")
    assert ax.get_title() == "t"


def test_plot_attention_shows_whitespace_and_checks_shapes():
    ax = viz.plot_attention(torch.eye(2), ["a", " "])
    assert tick_texts(ax.get_xticklabels()) == ["a", "␣"]
    with pytest.raises(ShapeError, match="k_tokens"):
        viz.plot_attention(torch.rand(2, 3), "ab", "xy")
    with pytest.raises(ShapeError, match=r"\[0, head\]"):
        viz.plot_attention(torch.rand(1, 2, 2, 2), "ab")


def heatmaps(fig):
    """The attention panels of a grid figure, without its colour bar."""
    return [ax for ax in fig.axes if ax.images and not hasattr(ax, "_colorbar")]


def test_plot_attention_grid_has_layers_times_heads_panels(gpt):
    ids = torch.tensor([TOK.encode("abc de")])
    _, attentions = gpt(ids, return_attention=True)
    fig = viz.plot_attention_grid(attentions, "abc de")
    panels = heatmaps(fig)
    assert len(panels) == 2 * 2
    assert panels[3].get_title() == "layer 1, head 1"
    np.testing.assert_allclose(panels[1].images[0].get_array(), attentions[0][0, 1].detach().numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="return_attention=True"):
        viz.plot_attention_grid([None, None], "abc de")


def test_plot_attention_grid_layers_draws_the_chosen_layers_with_their_own_indices():
    attentions = [torch.rand(1, 2, 3, 3).softmax(dim=-1) for _ in range(4)]  # 4 layers x 2 heads
    fig = viz.plot_attention_grid(attentions, "abc", layers=[1, -1])
    panels = heatmaps(fig)
    assert [ax.get_title() for ax in panels] == [
        "layer 1, head 0", "layer 1, head 1", "layer 3, head 0", "layer 3, head 1"
    ]
    for ax, (layer, head) in zip(panels, [(1, 0), (1, 1), (3, 0), (3, 1)]):
        np.testing.assert_allclose(ax.images[0].get_array(), attentions[layer][0, head].numpy(), rtol=1e-6)
    assert tick_texts(panels[0].get_xticklabels()) == ["", "", ""]  # x labels on the bottom row only
    assert tick_texts(panels[2].get_xticklabels()) == list("abc")
    for bad, error, message in [
        ([4], ValueError, r"\[-4, 3\].*got 4"),
        ([], ValueError, "at least one"),
        (2, TypeError, "list of layer indices"),
        ([0.5], ValueError, "got 0.5"),
    ]:
        with pytest.raises(error, match=message):
            viz.plot_attention_grid(attentions, "abc", layers=bad)


def test_plot_attention_grid_has_one_colour_bar_for_every_panel():
    attentions = [torch.rand(2, 3, 4, 4).softmax(dim=-1) for _ in range(2)]
    fig = viz.plot_attention_grid(attentions, "abcd", batch_index=1)
    bars = [ax for ax in fig.axes if hasattr(ax, "_colorbar")]
    assert len(bars) == 1 and len(fig.axes) == 2 * 3 + 1
    assert bars[0].get_ylabel() == "attention weight"
    assert bars[0].get_ylim() == (0.0, 1.0)  # the panels' shared scale
    assert all(ax.images[0].get_clim() == (0.0, 1.0) for ax in heatmaps(fig))
    viz.plot_attention_grid(attentions, "abcd", fig=fig, layers=[0])  # redrawn in place: still one bar
    assert sum(hasattr(ax, "_colorbar") for ax in fig.axes) == 1 and len(heatmaps(fig)) == 3


def test_plot_cross_attention_targets_down_sources_across():
    cross = torch.rand(2, 5).softmax(dim=-1)  # (T, S)
    ax = viz.plot_cross_attention(cross, "hello", "hi")
    assert ax.images[0].get_array().shape == (2, 5)
    assert tick_texts(ax.get_xticklabels()) == list("hello")
    assert tick_texts(ax.get_yticklabels()) == list("hi")
    assert ax.get_xlabel().startswith("source")


def test_to_bertviz_format():
    attentions = [torch.rand(2, 3, 4, 4) for _ in range(2)]  # (B, H, T, T) per layer
    args = viz.to_bertviz(attentions, "abcd", batch_index=1)
    assert set(args) == {"attention", "tokens"}
    assert isinstance(args["attention"], tuple) and len(args["attention"]) == 2
    assert all(a.shape == (1, 3, 4, 4) for a in args["attention"])
    torch.testing.assert_close(args["attention"][1][0], attentions[1][1])
    assert args["tokens"] == list("abcd")

    seq2seq = {
        "encoder": [torch.rand(1, 2, 5, 5)],
        "decoder": [torch.rand(1, 2, 3, 3)],
        "cross": [torch.rand(1, 2, 3, 5)],
    }
    args = viz.to_bertviz(seq2seq, "he lo", target_tokens="a\nc")
    assert args["cross_attention"][0].shape == (1, 2, 3, 5)
    assert (args["encoder_tokens"], args["decoder_tokens"]) == (list("he␣lo"), list("a↵c"))


def test_to_bertviz_output_is_accepted_by_bertviz():
    bertviz = pytest.importorskip("bertviz")
    args = viz.to_bertviz([torch.rand(1, 2, 3, 3).softmax(-1)], "abc")
    html = bertviz.head_view(**args, html_action="return")  # raises if the format were wrong
    assert html.data.strip()


def test_plot_mask_causal_and_padding():
    mask = mt.causal_mask(4)
    ax = viz.plot_mask(mask)
    np.testing.assert_array_equal(ax.images[0].get_array(), mask.float().numpy())
    padding = mt.padding_mask(torch.tensor([[1, 1, 1], [1, 1, 0]]))  # (B, 1, 1, T)
    ax = viz.plot_mask(padding[1], q_tokens=["q"], k_tokens="abc")
    np.testing.assert_array_equal(ax.images[0].get_array(), [[1.0, 1.0, 0.0]])
    assert tick_texts(ax.get_xticklabels()) == list("abc")


def test_plot_sinusoidal_and_position_similarity():
    ax = viz.plot_sinusoidal(16, 8)
    np.testing.assert_allclose(ax.images[0].get_array(), mt.sinusoidal_table(16, 8).numpy())
    assert len(ax.figure.axes) == 2  # the heat map and its colour bar
    table = mt.sinusoidal_table(10, 6)
    sim = viz.plot_position_similarity(table).images[0].get_array()
    np.testing.assert_allclose(sim, (table @ table.T).numpy(), rtol=1e-5)
    cos = viz.plot_position_similarity(table, cosine=True).images[0].get_array()
    np.testing.assert_allclose(np.diag(cos), 1.0, rtol=1e-5)


def test_plot_rope_rotation_turns_by_theta_per_position():
    d_head, pair, positions = 8, 1, 6
    ax = viz.plot_rope_rotation(positions, d_head, pair, vector=(1.0, 0.0))
    tips = np.array([a.xy for a in ax.texts if isinstance(a, Annotation)])  # (T, 2)
    assert len(tips) == positions
    np.testing.assert_allclose(np.hypot(*tips.T), 1.0, rtol=1e-5)  # rotations keep the length
    theta = 10000.0 ** (-2 * pair / d_head)
    angles = np.unwrap(np.arctan2(tips[:, 1], tips[:, 0]))
    np.testing.assert_allclose(angles, theta * np.arange(positions), atol=1e-5)


def stages_of(model, text, settings):
    ids = torch.tensor([TOK.encode(text)])
    return mt.logits_stages(model(ids)[:, -1], ids, settings)


@pytest.mark.parametrize("top", [5, 10])
def test_plot_next_token_stages_kept_bars_are_the_finite_logits(gpt, top):
    with torch.no_grad():
        stages = stages_of(
            gpt, "abc", mt.LogitsSettings(temperature=0.7, top_k=4, top_p=0.9, repetition_penalty=1.2)
        )
    fig = viz.plot_next_token_stages(stages, TOK, top=top, chosen=3)
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == [name for name, _ in stages]
    shown = stages[0][1][0].topk(top).indices  # the first stage's most likely tokens, top first
    for ax, (_, logits) in zip(fig.axes, stages):
        filled = [bar for bar in ax.patches if bar.get_fill() and bar.get_visible()]
        assert len(filled) == int(torch.isfinite(logits[0, shown]).sum())
        assert len(ax.patches) == top
    labels = tick_texts(fig.axes[0].get_yticklabels())
    assert labels == [("→ " if i == 3 else "") + viz.token_label(TOK, i) for i in shown.tolist()]


def test_plot_next_token_stages_accepts_1d_logits_and_the_distribution_dict(gpt):
    logits = torch.tensor([2.0, 1.0, float("-inf"), 0.0])
    fig = viz.plot_next_token_stages([("raw", logits)], top=4)
    assert sum(bar.get_fill() for bar in fig.axes[0].patches) == 3  # the -inf token is not filled
    dist = next_token_distribution(gpt, "abc", TOK, top_k=3)
    fig = viz.plot_next_token_stages(dist, TOK, top=6)
    assert len(fig.axes) == len(dist["stages"])
    assert sum(bar.get_fill() for bar in fig.axes[-1].patches) == 3
    with pytest.raises(ShapeError, match="one sequence"):
        viz.plot_next_token_stages([("raw", torch.zeros(2, 4))])


def test_plot_next_token_stages_reuses_its_figure(gpt):
    with torch.no_grad():
        first = stages_of(gpt, "abc", mt.LogitsSettings(top_k=3))
        second = stages_of(gpt, "ba", mt.LogitsSettings(top_k=5))
    fig = viz.plot_next_token_stages(first, TOK, top=8)
    axes = list(fig.axes)
    viz.plot_next_token_stages(second, TOK, top=8, fig=fig)
    assert fig.axes == axes  # same panels, new bars
    assert sum(bar.get_fill() for bar in fig.axes[1].patches) == 5


def test_next_token_stages_html_draws_the_same_bars_as_the_figure(gpt):
    with torch.no_grad():
        stages = stages_of(gpt, "abc", mt.LogitsSettings(temperature=0.7, top_k=4, top_p=0.9))
    chosen = int(stages[0][1][0].argmax())
    page = viz.next_token_stages_html(stages, TOK, top=8, chosen=chosen, title="a <title>")
    fig = viz.plot_next_token_stages(stages, TOK, top=8, chosen=chosen)
    x_max = fig.axes[0].get_xlim()[1]
    widths = [float(w) for w in re.findall(r"width:([0-9.]+)%", page)]  # token-major: row by row
    drawn = [[bar.get_width() if bar.get_visible() else 0.0 for bar in ax.patches] for ax in fig.axes]
    expected = [100 * drawn[s][r] / x_max for r in range(8) for s in range(len(stages))]
    assert widths == pytest.approx(expected, abs=0.06)  # printed with one decimal
    filled = page.count("background:")
    assert filled == sum(bar.get_fill() and bar.get_visible() for ax in fig.axes for bar in ax.patches)
    assert page.count("<tr>") == 1 + 8 and "a &lt;title&gt;" in page
    assert "→ " + html.escape(viz.token_label(TOK, chosen)) in page


def test_plot_beam_tree_draws_every_candidate(gpt):
    out = generate(gpt, torch.tensor([TOK.encode("ab")]), num_beams=2, max_new_tokens=3, return_trace=True)
    trace = out.trace[0]
    ax = viz.plot_beam_tree(out.trace, TOK)
    nodes = [t for t in ax.texts if t.get_gid() == "node"]
    candidates = [c for step in trace["steps"] for c in step["candidates"]]
    assert len(nodes) == 1 + len(candidates)  # the prompt and one node per candidate
    pruned = [c for c in candidates if c["beam"] is None and not c["ends"]]
    grey = [t for t in nodes if t.get_color() == viz.REMOVED_COLOR]
    assert 0 < len(grey) <= len(pruned)  # pruned ones are grey (unless on the best path)
    red = [t for t in nodes if t.get_color() == viz.CHOSEN_COLOR]
    best = max((h for h in trace["finished"] if h["returned"]), key=lambda h: h["score"])
    assert len(red) == len(best["tokens"])  # the best hypothesis, one node per generated token


def history(n=12, every=4):
    return [
        {"step": s, "lr": 1e-3 * min(1, s / 3), "train_loss": 3 - 0.1 * s}
        | ({"val_loss": 3.1 - 0.1 * s} if s % every == 0 else {})
        for s in range(1, n + 1)
    ]


def test_plot_history_losses_and_lr():
    ax = viz.plot_history(history())
    train, val = ax.get_lines()
    assert len(train.get_xdata()) == 12 and list(val.get_xdata()) == [4, 8, 12]
    (lr,) = ax.lr_axes.get_lines()
    assert lr.get_ydata()[-1] == pytest.approx(1e-3)
    assert len(ax.get_legend().get_texts()) == 3
    with pytest.raises(ValueError, match="empty"):
        viz.plot_history([])


def test_live_plot_redraws_every_n_steps_and_prints_nothing(capsys):
    live = viz.LivePlot(every=5)
    records = history(12)
    for step in range(1, 13):  # what Trainer does: the callback gets the trainer after every step
        trainer = SimpleNamespace(step=step, history=records[:step], cfg=SimpleNamespace(steps=12))
        live(trainer)
    assert live.updates == 3  # steps 5, 10 and the last one, 12
    assert len(live.fig.axes[0].get_lines()[0].get_xdata()) == 12
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="positive"):
        viz.LivePlot(every=0)


def test_live_plot_as_trainer_callback():
    from minitransformer.tools.training_tasks import CausalLMTask
    from minitransformer.training import TrainConfig, Trainer

    ids = torch.randint(0, TOK.vocab_size, (400,))
    model = mt.GPT(
        mt.TransformerConfig(vocab_size=TOK.vocab_size, d_model=16, n_heads=2, n_layers=1, max_len=8)
    )
    live = viz.LivePlot(every=2)
    cfg = TrainConfig(steps=4, eval_interval=4, eval_batches=1, warmup_steps=1, progress=False)
    Trainer(model, CausalLMTask(ids[:300], ids[300:], context=8, batch_size=2), cfg, callback=live).fit()
    assert live.updates == 2


def test_plot_embeddings_pca_recovers_a_plane():
    torch.manual_seed(0)
    plane = torch.randn(7, 2) * torch.tensor([3.0, 1.0])  # points spread in 2 directions ...
    basis = torch.linalg.qr(torch.randn(5, 2)).Q.T  # ... of a 5-D space
    weight = plane @ basis + 1.0  # (V, C)
    ax = viz.plot_embeddings_pca(weight, "abcdefg")
    coords = ax.collections[0].get_offsets()
    centered = (plane - plane.mean(dim=0)).numpy()
    _, _, vh = np.linalg.svd(centered, full_matrices=False)
    expected = centered @ vh.T  # the same projection, up to the sign of each axis
    np.testing.assert_allclose(np.abs(coords), np.abs(expected), atol=1e-4)
    assert [t.get_text() for t in ax.texts] == list("abcdefg")
    shares = [int(re.search(r"\((\d+)%", label).group(1)) for label in (ax.get_xlabel(), ax.get_ylabel())]
    assert 98 <= sum(shares) <= 100  # two directions hold all the variance


TINY_TOK = mt.CharTokenizer.from_text("abcdefghij klmnop")


def tiny_gpt():
    torch.manual_seed(0)
    cfg = mt.TransformerConfig(vocab_size=TINY_TOK.vocab_size, d_model=16, n_heads=2, n_layers=2, max_len=32)
    model = mt.GPT(cfg).eval()
    torch.nn.init.normal_(model.embed.tokens.weight, std=1.0)
    return model


def test_plot_next_token_stages_titles_its_settings_and_ticks_every_panel():
    model, settings = tiny_gpt(), mt.LogitsSettings(temperature=0.7, top_k=4, top_p=0.9)
    ids = torch.tensor([TINY_TOK.encode("abc")])
    with torch.no_grad():
        stages = mt.logits_stages(model(ids)[:, -1], ids, settings)
    fig = viz.plot_next_token_stages(stages, TINY_TOK, top=5, settings=settings)
    fig.canvas.draw()
    assert fig._suptitle.get_text() == "settings: temperature=0.7, top_k=4, top_p=0.9"
    for ax in fig.axes:
        shown = [t for t in ax.get_xticks() if 0 <= t <= ax.get_xlim()[1]]
        assert len(shown) >= 3, shown
    dist = next_token_distribution(model, "abc", TINY_TOK, top_k=3)
    assert viz.plot_next_token_stages(dist, TINY_TOK)._suptitle.get_text() == "settings: top_k=3"


def test_plot_beam_tree_title_reconciles_the_score_with_the_last_edge():
    model = tiny_gpt()
    out = generate(model, torch.tensor([TINY_TOK.encode("ab")]), num_beams=2, max_new_tokens=3, return_trace=True)
    ax = viz.plot_beam_tree(out.trace, TINY_TOK)
    best = max((h for h in out.trace[0]["finished"] if h["returned"]), key=lambda h: h["score"])
    total = float(re.search(r"sum of log-probs (-?[0-9.]+)", ax.get_title()).group(1))
    assert abs(total / len(best["tokens"]) - best["score"]) < 0.01  # length_penalty 1.0
    edges = [t for t in ax.texts if t.get_gid() != "node"]
    assert edges and all(t.get_fontsize() >= 8 for t in edges)
