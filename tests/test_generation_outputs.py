"""generate(..., return_dict_in_generate=True, output_scores/output_logits/output_attentions=True) gives
Hugging Face's outputs, field by field, on a random GPT-2 with the same weights."""

import pytest
import torch
from test_generation import PAD, V, hf_and_ours

import minitransformer as mt
from minitransformer import viz

transformers = pytest.importorskip("transformers")
OUTPUTS = dict(return_dict_in_generate=True, output_scores=True, output_logits=True, output_attentions=True)


@pytest.fixture(scope="module")
def pair():
    return hf_and_ours(attn_implementation="eager")  # eager: the attention weights are computed


@pytest.fixture(scope="module")
def prompts():
    """Two left-padded prompts and their attention mask."""
    ids = torch.randint(2, V, (2, 6), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, :2] = 0
    return ids.masked_fill(mask == 0, PAD), mask


def assert_steps_equal(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        finite = torch.isfinite(b)
        assert torch.equal(torch.isfinite(a), finite)
        torch.testing.assert_close(a[finite], b[finite], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kw", [dict(), dict(do_sample=True, top_k=10, temperature=0.7), dict(num_beams=3)],
                         ids=["greedy", "sampling", "beam"])
def test_scores_and_logits_equal_hugging_face(pair, prompts, kw):
    hf, ours = pair
    ids, mask = prompts
    torch.manual_seed(3)
    theirs = hf.generate(ids, attention_mask=mask, max_new_tokens=6, pad_token_id=PAD, **OUTPUTS, **kw)
    torch.manual_seed(3)
    got = mt.generate(ours, ids, attention_mask=mask, max_new_tokens=6, pad_token_id=PAD, **OUTPUTS, **kw)
    assert torch.equal(got.sequences, theirs.sequences)
    assert_steps_equal(got.scores, theirs.scores)
    assert_steps_equal(got.logits, theirs.logits)
    if "num_beams" in kw:
        torch.testing.assert_close(got.sequences_scores, theirs.sequences_scores, atol=1e-4, rtol=1e-4)


def test_attentions_equal_hugging_face(pair, prompts):
    hf, ours = pair
    ids, mask = prompts
    theirs = hf.generate(ids, attention_mask=mask, max_new_tokens=4, pad_token_id=PAD, **OUTPUTS)
    got = mt.generate(ours, ids, attention_mask=mask, max_new_tokens=4, pad_token_id=PAD, **OUTPUTS)
    assert len(got.attentions) == len(theirs.attentions) == 4
    for step_ours, step_theirs in zip(got.attentions, theirs.attentions, strict=True):
        assert len(step_ours) == len(step_theirs) == 2  # one per layer
        for a, b in zip(step_ours, step_theirs, strict=True):
            assert a.shape == b.shape  # (B, H, T, T) for the prompt, then (B, H, 1, L)
            real = mask[1].bool()  # HF gives the padded prompt's padding queries uniform weights, ours zeros
            rows = slice(None) if a.shape[2] == 1 else real
            torch.testing.assert_close(a[1:, :, rows], b[1:, :, rows], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(a[:1], b[:1], atol=1e-5, rtol=1e-5)


def test_asking_for_outputs_does_not_change_the_tokens(pair, prompts):
    _, ours = pair
    ids, mask = prompts
    plain = mt.generate(ours, ids, attention_mask=mask, max_new_tokens=8, pad_token_id=PAD)
    rich = mt.generate(ours, ids, attention_mask=mask, max_new_tokens=8, pad_token_id=PAD, **OUTPUTS)
    assert torch.equal(plain, rich.sequences)
    assert mt.generate(ours, ids, attention_mask=mask, max_new_tokens=2, output_scores=True).dim() == 2


def test_seq2seq_reports_decoder_and_cross_attentions():
    model, tok = mt.load_pretrained("dates-seq2seq")
    src = torch.tensor([tok.encode("March 5, 2021")])
    out = mt.generate(model, src_ids=src, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      max_new_tokens=4, **OUTPUTS)
    assert out.attentions is None and len(out.decoder_attentions) == len(out.cross_attentions) == 4
    assert out.cross_attentions[1][0].shape[-1] == src.shape[1]  # every step looks at the whole source
    torch.testing.assert_close(out.cross_attentions[2][0].sum(-1), torch.ones(1, 4, 1))


def test_attention_during_generation_plot(pair, prompts):
    _, ours = pair
    ids = prompts[0][:1]
    out = mt.generate(ours, ids, max_new_tokens=5, **OUTPUTS)
    ax = viz.plot_generation_attention(out, layer=1, head=0)
    grid = ax.images[0].get_array()
    assert grid.shape == (5, 10)  # new tokens x every position but the last
    step2 = out.attentions[2][1][0, 0, -1]  # (L,) the weights behind the third new token
    torch.testing.assert_close(torch.as_tensor(grid[2, : step2.shape[0]].data).float(), step2.float())
    assert grid.mask[0, 6:].all() and not grid.mask[4].any()  # later positions do not exist yet
