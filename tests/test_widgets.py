"""widgets.py without a browser: set a control's .value, check that the outputs follow.

ipywidgets runs observers synchronously when .value is set from Python, so every assertion
below sees the finished update. Models are tiny and random; their embeddings are scaled up
(std 0.1 instead of 0.02) so that the next-token distributions are uneven enough for every
setting to change the text.
"""

import pytest
import torch

import minitransformer as mt
from minitransformer.data import seq2seq_tokenizer
from minitransformer.generation import generate
from minitransformer.widgets import AttentionExplorer, BeamSearchExplorer, FillMaskExplorer, SamplingExplorer

TOK = mt.CharTokenizer.from_text("ROMEO: abcdefghij klmnop\n", special_tokens=("[PAD]", "[MASK]"))
DATES = seq2seq_tokenizer()


def tiny(cls, tokenizer=TOK, seed=0):
    torch.manual_seed(seed)
    cfg = mt.TransformerConfig(vocab_size=tokenizer.vocab_size, d_model=16, n_heads=2, n_layers=2, max_len=48)
    model = cls(cfg).eval()
    torch.nn.init.normal_(model.embed.tokens.weight, std=0.1)  # less uniform predictions than at 0.02
    return model


@pytest.fixture(scope="module")
def gpt():
    return tiny(mt.GPT)


@pytest.fixture
def explorer(gpt):
    return SamplingExplorer(gpt, TOK, prompt="ROMEO:", max_new_tokens=12)


def shown(ex):
    return ex.text_output.value, ex.plot_output.value


def test_sampling_explorer_starts_with_text_and_a_plot(explorer):
    assert explorer.error.value == ""
    assert "<b>ROMEO:</b>" in explorer.text_output.value
    assert explorer.plot_output.value.count("<tr>") == 1 + 15  # the header, then the top 15 tokens
    assert "step 1:" in explorer.plot_output.value
    assert len(explorer.sequence) == len("ROMEO:") + 12
    assert explorer.step.max == 12
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_temperature_changes_text_and_plot(explorer):
    before = shown(explorer)
    explorer.temperature.value = 0.3
    after = shown(explorer)
    assert explorer.error.value == ""
    assert after[0] != before[0] and after[1] != before[1]
    explorer.temperature.value = 1.0
    assert shown(explorer) == before  # seeded: the same settings give the same picture


def test_every_sampling_control_updates(explorer):
    for control, value in [
        (explorer.top_k, 3),
        (explorer.top_p, 0.5),
        (explorer.min_p, 0.2),
        (explorer.repetition_penalty, 1.8),
        (explorer.seed, 7),
    ]:
        before = shown(explorer)
        control.value = value
        assert explorer.error.value == "", control.description
        assert shown(explorer) != before, control.description


def test_the_text_is_what_generate_returns(explorer, gpt):
    explorer.strategy.value = "greedy"
    assert explorer.temperature.disabled and explorer.num_beams.disabled
    prompt = torch.tensor([TOK.encode("ROMEO:")])
    assert explorer.sequence == generate(gpt, prompt, max_new_tokens=12)[0].tolist()
    explorer.strategy.value = "beam"
    assert not explorer.num_beams.disabled and explorer.error.value == ""
    assert explorer.sequence == generate(gpt, prompt, max_new_tokens=12, num_beams=4)[0].tolist()
    explorer.strategy.value = "sampling"
    g = torch.Generator().manual_seed(0)
    assert (
        explorer.sequence
        == generate(gpt, prompt, max_new_tokens=12, do_sample=True, top_k=0, generator=g)[0].tolist()
    )


def test_step_slider_moves_the_highlight_and_the_plot_only(explorer):
    sequence = list(explorer.sequence)
    text, plot = shown(explorer)
    explorer.step.value = 5
    assert explorer.sequence == sequence  # no new generation
    assert "<mark>" in explorer.text_output.value and explorer.text_output.value != text
    assert explorer.plot_output.value != plot


def test_max_new_tokens_moves_the_step_range(explorer):
    explorer.step.value = 12
    explorer.max_new_tokens.value = 4
    assert explorer.error.value == ""
    assert explorer.step.max == 4 and explorer.step.value == 4
    assert len(explorer.sequence) == len("ROMEO:") + 4


@pytest.mark.parametrize(
    "control, bad, good, message",
    [
        ("top_p", 0.0, 0.9, "top_p"),
        ("prompt", "ROMEO: #", "ROMEO: ab", "UnknownTokenError"),
        ("prompt", "", "ab", "empty"),
    ],
)
def test_an_impossible_setting_shows_an_error_and_the_widget_recovers(explorer, control, bad, good, message):
    before = shown(explorer)
    getattr(explorer, control).value = bad
    assert message in explorer.error.value
    assert shown(explorer) == before  # the last good result stays on screen
    getattr(explorer, control).value = good
    assert explorer.error.value == ""
    assert shown(explorer) != before  # the next valid change works again


def test_a_warning_is_shown_as_a_note(gpt):
    ex = SamplingExplorer(gpt, TOK, max_new_tokens=60)  # prompt + 60 > max_len=48: a sliding window
    assert "Note:" in ex.error.value and "max_len=48" in ex.error.value
    assert len(ex.sequence) == len("ROMEO:") + 60


@pytest.fixture(scope="module", params=["gpt", "mlm", "seq2seq"])
def attention(request):
    if request.param == "seq2seq":
        return AttentionExplorer(tiny(mt.Seq2SeqTransformer, DATES), DATES, source="March 5, 2021")
    model = tiny(mt.GPT if request.param == "gpt" else mt.MaskedLM)
    return AttentionExplorer(model, TOK, text="ROMEO: a[MASK]c" if request.param == "mlm" else "ROMEO: abc")


def test_attention_explorer_layer_head_and_query(attention):
    assert attention.error.value == ""
    plot = attention.plot_output.value
    attention.layer.value = 1
    assert attention.plot_output.value != plot
    plot = attention.plot_output.value
    attention.head.value = -1  # the mean of the heads
    assert attention.plot_output.value != plot
    assert attention.summary.value == ""
    attention.query.value = 3
    assert "attends most to" in attention.summary.value
    assert attention.error.value == ""


def test_attention_explorer_new_text_and_errors(attention):
    box = attention.source if attention.is_seq2seq else attention.text
    good = box.value
    box.value = ""
    assert "empty" in attention.error.value
    attention.layer.value = 1 - attention.layer.value  # still works, on the last good input
    assert attention.error.value == ""
    box.value = good[:5]
    assert attention.error.value == ""
    if not attention.is_seq2seq:  # (a seq2seq explorer's queries are its generated target)
        assert len(attention.query.options) == 1 + 5  # "all", then one entry per token


def test_seq2seq_attention_kinds_and_target():
    ex = AttentionExplorer(tiny(mt.Seq2SeqTransformer, DATES), DATES, source="March 5, 2021")
    assert ex.query.options[1][0] == "0: [BOS]"  # the decoder starts from its start token
    plots = {}
    for kind in ("encoder", "decoder", "cross"):
        ex.kind.value = kind
        plots[kind] = ex.plot_output.value
    assert len(set(plots.values())) == 3 and ex.error.value == ""
    ex.kind.value = "encoder"
    assert len(ex.query.options) == 1 + len("March 5, 2021")
    ex.target.value = "2021-03-05"
    ex.kind.value = "cross"
    assert len(ex.query.options) == 1 + 1 + len("2021-03-05")
    assert ex.error.value == ""


def test_beam_search_explorer(gpt):
    ex = BeamSearchExplorer(gpt, TOK, prompt="ROMEO:", num_beams=2, max_new_tokens=4)
    assert ex.error.value == "" and ex.text_output.value.count("<tr>") == 1 + 2
    text, plot = ex.text_output.value, ex.plot_output.value
    ex.num_beams.value = 3
    assert ex.text_output.value.count("<tr>") == 1 + 3 and ex.plot_output.value != plot
    for control, value in [(ex.length_penalty, -1.0), (ex.early_stopping, "never"), (ex.max_new_tokens, 2)]:
        control.value = value
        assert ex.error.value == ""
    assert ex.text_output.value != text
    ex.prompt.value = "#"
    assert "UnknownTokenError" in ex.error.value
    ex.prompt.value = "ab"
    assert ex.error.value == ""


def test_fill_mask_explorer():
    ex = FillMaskExplorer(tiny(mt.MaskedLM), TOK, text="ROMEO: a[MASK]c", top=3)
    assert ex.error.value == "" and ex.text_output.value.count("<tr>") == 3
    ex.text.value = "[MASK]bc[MASK]"
    assert ex.text_output.value.count("<table>") == 2
    ex.top.value = 5
    assert ex.text_output.value.count("<tr>") == 2 * 5
    ex.text.value = "bad cab"
    assert "no [MASK]" in ex.error.value
    ex.text.value = "a[MASK]"
    assert ex.error.value == ""


def test_explorers_reject_the_wrong_model_type(gpt):
    with pytest.raises(TypeError, match="GPT"):
        SamplingExplorer(tiny(mt.MaskedLM), TOK)
    with pytest.raises(TypeError, match="MaskedLM"):
        FillMaskExplorer(gpt, TOK)
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        FillMaskExplorer(tiny(mt.MaskedLM, DATES), DATES)
