"""viz/fonts.py: Chinese labels are drawn with a CJK font when one is installed, Latin text keeps its
font, and without a CJK font the first plot of Chinese text says once how to get one."""

import os
import warnings

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib import font_manager

from minitransformer import viz
from minitransformer.viz import fonts

plt.switch_backend("Agg")
# (on CI, where `CI` is set, .ci/run installs fonts-noto-cjk, and a missing font fails these tests instead)
installed = pytest.mark.skipif(fonts.find_cjk_font() is None and not os.environ.get("CI"),
                               reason="no CJK font installed here (e.g. apt-get install fonts-noto-cjk)")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def draw(fig):
    """Draw the figure; return (the RGBA pixels, the messages of every warning raised meanwhile)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba()).copy(), [str(w.message) for w in caught]


def attention_map(tokens):
    weights = torch.softmax(torch.randn(len(tokens), len(tokens)), dim=-1)
    return viz.plot_attention(weights, tokens).figure


@installed
def test_chinese_tick_labels_draw_without_missing_glyphs():
    assert fonts.find_cjk_font() in matplotlib.rcParams["font.family"]  # importing viz added it
    _, messages = draw(attention_map(list("床前明月光")))
    assert not [m for m in messages if "missing from font" in m]


@installed
def test_without_the_fallback_the_same_labels_miss_their_glyphs():
    """The test above can fail: with DejaVu Sans alone matplotlib reports the missing characters."""
    with matplotlib.rc_context({"font.family": ["sans-serif"]}):
        fig, ax = plt.subplots(figsize=(2, 1))
        ax.set_xticks(range(3), list("疑是霜"))
        _, messages = draw(fig)
    assert any("missing from font" in m for m in messages)


@installed
def test_latin_text_looks_exactly_as_before():
    def latin():
        fig, ax = plt.subplots(figsize=(3, 2), dpi=72)
        ax.plot([0, 1], [1, 0])
        ax.set(title="Attention: head 0", xlabel="key position", ylabel="loss (nats)")
        return draw(fig)[0]

    with matplotlib.rc_context({"font.family": ["sans-serif"]}):
        before = latin()
    assert np.array_equal(latin(), before)


@installed
def test_using_the_font_twice_adds_it_once():
    with matplotlib.rc_context():
        fonts.use_cjk_font()
        fonts.use_cjk_font()
        families = list(matplotlib.rcParams["font.family"])
    assert families.count(fonts.find_cjk_font()) == 1 and families[0] == "sans-serif"


@pytest.fixture
def no_cjk_font(monkeypatch):
    """A system without CJK fonts: matplotlib's list and the system's font folders hold none."""
    monkeypatch.setattr(font_manager.fontManager, "ttflist",
                        [f for f in font_manager.fontManager.ttflist if not fonts._CJK_FILE.search(f.fname)])
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *a, **k: [])
    for key, value in {"family": None, "searched": False, "warned": False}.items():
        monkeypatch.setitem(fonts._state, key, value)
    with matplotlib.rc_context({"font.family": ["sans-serif"]}):
        yield


def test_without_a_cjk_font_the_first_chinese_plot_warns_once_how_to_get_one(no_cjk_font):
    assert fonts.use_cjk_font() is None and list(matplotlib.rcParams["font.family"]) == ["sans-serif"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        attention_map(list("abc"))  # Latin: nothing to say
        attention_map(list("春眠不觉晓"))
        attention_map(list("处处闻啼鸟"))
    ours = [str(w.message) for w in caught if "CJK" in str(w.message)]
    assert len(ours) == 1 and "\n" not in ours[0]
    assert "fonts-noto-cjk" in ours[0] and "conda install -c conda-forge font-ttf-noto-cjk" in ours[0]


@pytest.mark.parametrize("text, expected", [("abc", False), ("↵␣∅", False), ("明", True), ("，", True),
                                            ("カナ", True), ("한", True), ("𪚥", True)])
def test_has_cjk(text, expected):
    assert fonts.has_cjk(text) is expected
