"""Model-level properties: causality, padding invariance, KV cache == full recompute, clear errors."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import minitransformer as mt
from minitransformer.masks import positions_from_mask

POS = ["learned", "sinusoidal", "rope", "none"]


def small(pos="learned", **kw):
    base = dict(vocab_size=23, d_model=16, n_heads=4, n_layers=2, max_len=12, pos_encoding=pos)
    return mt.TransformerConfig(**(base | kw))


@pytest.mark.parametrize("pos", POS)
@pytest.mark.parametrize("norm_first", [True, False])
@given(t=st.integers(2, 12), edit=st.data())
def test_gpt_is_causal(pos, norm_first, t, edit):
    model = mt.GPT(small(pos, norm_first=norm_first)).eval()
    ids = torch.randint(0, 23, (2, t))
    where = edit.draw(st.integers(1, t - 1))
    changed = ids.clone()
    changed[:, where] = (changed[:, where] + 1) % 23
    a, b = model(ids), model(changed)
    torch.testing.assert_close(a[:, :where], b[:, :where])  # earlier positions cannot see the edit
    assert not torch.allclose(a[:, where:], b[:, where:])


@pytest.mark.parametrize("pos", POS)
@given(t=st.integers(2, 12), n_pad=st.integers(1, 5))
def test_masked_lm_padding_invariance(pos, t, n_pad):
    model = mt.MaskedLM(small(pos)).eval()
    ids = torch.randint(0, 23, (1, t))
    pad_len = min(n_pad, 12 - t)
    padded = torch.cat([ids, torch.randint(0, 23, (1, pad_len))], dim=1)  # any junk in padded slots
    mask = torch.cat([torch.ones(1, t), torch.zeros(1, pad_len)], dim=1).long()
    torch.testing.assert_close(model(padded, mask)[:, :t], model(ids), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pos", POS)
def test_gpt_left_padding_invariance(pos):
    model = mt.GPT(small(pos)).eval()
    ids = torch.randint(0, 23, (1, 6))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], dim=1)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1]])
    out = model(padded, mask, position_ids=positions_from_mask(mask))
    torch.testing.assert_close(out[:, 3:], model(ids), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pos", POS)
@pytest.mark.parametrize("attn_impl", ["fast", "reference"])
@given(prompt=st.integers(1, 6), steps=st.integers(1, 6))
def test_gpt_kv_cache_equals_full_forward(pos, attn_impl, prompt, steps):
    model = mt.GPT(small(pos, attn_impl=attn_impl)).eval()
    ids = torch.randint(0, 23, (2, prompt + steps))
    full = model(ids)
    cache = model.new_cache()
    pieces = [model(ids[:, :prompt], cache=cache)]
    pieces += [model(ids[:, t : t + 1], cache=cache) for t in range(prompt, prompt + steps)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == prompt + steps


def test_gpt_kv_cache_with_left_padding():
    model = mt.GPT(small()).eval()
    ids = torch.randint(1, 23, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, :3] = 0
    pos = positions_from_mask(mask)
    full = model(ids, mask, position_ids=pos)
    cache = model.new_cache()
    out = [model(ids[:, :5], mask[:, :5], position_ids=pos[:, :5], cache=cache)]
    out += [
        model(ids[:, t : t + 1], mask[:, : t + 1], position_ids=pos[:, t : t + 1], cache=cache)
        for t in range(5, 8)
    ]
    got = torch.cat(out, dim=1)
    torch.testing.assert_close(got[mask.bool()], full[mask.bool()], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pos", POS)
@pytest.mark.parametrize("norm_first", [True, False])
def test_seq2seq_causal_and_cache(pos, norm_first):
    model = mt.Seq2SeqTransformer(small(pos, norm_first=norm_first)).eval()
    src, tgt = torch.randint(0, 23, (2, 7)), torch.randint(0, 23, (2, 6))
    src_mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    full, att = model(src, tgt, src_mask, return_attention=True)
    assert [a.shape for a in att["cross"]] == [(2, 4, 6, 7)] * 2
    assert (att["cross"][0][1, :, :, 4:] == 0).all()
    changed = tgt.clone()
    changed[:, 4] = (changed[:, 4] + 1) % 23
    torch.testing.assert_close(model(src, changed, src_mask)[:, :4], full[:, :4])
    # changing a padded source token changes nothing
    src2 = src.clone()
    src2[1, 5] = (src2[1, 5] + 3) % 23
    torch.testing.assert_close(model(src2, tgt, src_mask)[1], full[1], atol=1e-5, rtol=1e-5)
    memory = model.encode(src, src_mask)
    cache = model.new_cache(source_length=7)
    steps = [model.decode(tgt[:, t : t + 1], memory, src_mask, cache=cache) for t in range(6)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_return_attention_shapes_and_rows_sum_to_one():
    model = mt.GPT(small()).eval()
    logits, att = model(torch.randint(0, 23, (3, 9)), return_attention=True)
    assert logits.shape == (3, 9, 23) and len(att) == 2 and att[0].shape == (3, 4, 9, 9)
    torch.testing.assert_close(att[1].sum(-1), torch.ones(3, 4, 9))
    assert (att[0].triu(1) == 0).all()
    _, att = mt.MaskedLM(small()).eval()(torch.randint(0, 23, (1, 5)), return_attention=True)
    assert att[0].shape == (1, 4, 5, 5) and (att[0].triu(1) > 0).any()  # bidirectional


def test_weight_tying_and_config_kept():
    cfg = small()
    tied, untied = mt.GPT(cfg), mt.GPT(small(tie_weights=False))
    assert tied.lm_head.weight is tied.embed.tokens.weight and tied.config is cfg
    assert untied.num_parameters() - tied.num_parameters() == 23 * 16
    assert "total" in mt.summary(tied) and str(tied.num_parameters()) in mt.summary(tied).replace(",", "")


BAD_IDS = [
    (lambda: [[1, 2]], TypeError, "input_ids must be a torch tensor"),
    (lambda: torch.tensor([[1.0, 2.0]]), TypeError, "integer token ids"),
    (lambda: torch.tensor([1, 2]), ValueError, "for a single sequence use input_ids\\[None\\]"),
    (lambda: torch.tensor([[1, 99]]), ValueError, "id 99, outside the vocabulary \\[0, 22\\]"),
    (lambda: torch.tensor([[-1, 2]]), ValueError, "id -1"),
    (lambda: torch.zeros(1, 13, dtype=torch.long), ValueError, "longer than the model's context max_len=12"),
    (lambda: torch.zeros(1, 0, dtype=torch.long), ValueError, "is empty"),
]


@pytest.mark.parametrize("make,error,message", BAD_IDS)
def test_bad_ids_get_clear_errors(make, error, message):
    with pytest.raises(error, match=message):
        mt.GPT(small())(make())


@pytest.mark.parametrize(
    "mask,message",
    [
        (torch.ones(2, 4), "shape \\(2, 4\\), expected \\(1, 5\\)"),
        (torch.ones(1, 5, 1), "must have shape \\(batch, seq_len\\)"),
        (torch.full((1, 5), 2), "only 0"),
    ],
)
def test_bad_attention_mask_is_named(mask, message):
    with pytest.raises(ValueError, match=message):
        mt.GPT(small())(torch.zeros(1, 5, dtype=torch.long), mask)


def test_seq2seq_errors_name_their_argument():
    model = mt.Seq2SeqTransformer(small())
    with pytest.raises(ValueError, match="src_mask has shape"):
        model(
            torch.zeros(1, 5, dtype=torch.long),
            torch.zeros(1, 2, dtype=torch.long),
            src_mask=torch.ones(1, 4),
        )
    with pytest.raises(ValueError, match="tgt_ids contains id 30"):
        model(torch.zeros(1, 5, dtype=torch.long), torch.tensor([[30]]))
