"""Attention against PyTorch: the reference path, the fast path and F.scaled_dot_product_attention agree."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import minitransformer as mt
from minitransformer.attention import attention_fast, attention_reference


def qkv(b=2, h=3, tq=5, tk=5, d=8, dtype=torch.float64):
    return (
        torch.randn(b, h, tq, d, dtype=dtype),
        torch.randn(b, h, tk, d, dtype=dtype),
        torch.randn(b, h, tk, d, dtype=dtype),
    )


def padding(b, tk, lengths):
    keep = torch.zeros(b, tk, dtype=torch.long)
    for i, n in enumerate(lengths):
        keep[i, :n] = 1
    return mt.padding_mask(keep)


CASES = {
    "no mask": lambda: (qkv(), None),
    "causal": lambda: (qkv(), mt.causal_mask(5)),
    "padding": lambda: (qkv(), padding(2, 5, [5, 3])),
    "causal+padding": lambda: (qkv(), mt.causal_mask(5) & padding(2, 5, [5, 2])),
    "cross (Tq != Tk) + padding": lambda: (qkv(tq=3, tk=7), padding(2, 7, [7, 4])),
    "per-head mask": lambda: (qkv(), torch.rand(2, 3, 5, 5) > 0.3),
}


@pytest.mark.parametrize("case", CASES)
def test_reference_and_fast_equal_torch_sdpa(case):
    (q, k, v), mask = CASES[case]()
    if mask is not None:
        mask = mask | torch.eye(q.shape[-2], k.shape[-2], dtype=torch.bool)  # every query sees a key
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    ours, weights = mt.scaled_dot_product_attention(q, k, v, mask)
    fast, none = mt.scaled_dot_product_attention(q, k, v, mask, need_weights=False)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast, expected, rtol=1e-12, atol=1e-12)
    assert none is None
    torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)))
    if mask is not None:
        assert (weights[~mask.expand_as(weights)] == 0).all()


def test_weights_follow_the_formula():
    q, k, v = qkv()
    _, weights = mt.scaled_dot_product_attention(q, k, v)
    expected = torch.softmax(q @ k.transpose(-2, -1) / 8**0.5, dim=-1)
    torch.testing.assert_close(weights, expected)


@pytest.mark.parametrize("tq,tk", [(5, 5), (2, 6), (1, 6)])
def test_is_causal_is_bottom_right_aligned(tq, tk):
    q, k, v = qkv(tq=tq, tk=tk)
    mask = mt.causal_mask(tq, tk)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(attention_reference(q, k, v, is_causal=True)[0], expected)
    torch.testing.assert_close(attention_fast(q, k, v, is_causal=True)[0], expected)
    assert mask[-1].all()  # the newest query sees every key
    assert tq == 1 or not mask[0, -1]  # an older one does not see the future


def test_query_that_sees_no_key_gets_zeros_on_both_paths():
    q, k, v = qkv(b=1, h=1)
    mask = torch.ones(5, 5, dtype=torch.bool)
    mask[2] = False
    ref, weights = attention_reference(q, k, v, mask)
    fast, no_weights = attention_fast(q, k, v, mask)
    assert no_weights is None
    assert not ref.isnan().any() and not fast.isnan().any()
    assert (weights[0, 0, 2] == 0).all() and (ref[0, 0, 2] == 0).all()
    torch.testing.assert_close(ref, fast)


def test_gradcheck_float64():
    q, k, v = (t.requires_grad_() for t in qkv(b=1, h=2, tq=3, tk=4, d=3))
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.autograd.gradcheck(
        lambda q, k, v: mt.scaled_dot_product_attention(q, k, v, mask)[0], (q, k, v)
    )
    assert torch.autograd.gradcheck(
        lambda q, k, v: mt.scaled_dot_product_attention(q, k, v, mask, need_weights=False)[0], (q, k, v)
    )


@given(t=st.integers(1, 6), h=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_attention_without_positions_is_permutation_equivariant(t, h, seed):
    g = torch.Generator().manual_seed(seed)
    mha = mt.MultiHeadAttention(h * 4, h).double().eval()
    x = torch.randn(2, t, h * 4, generator=g, dtype=torch.float64)
    perm = torch.randperm(t, generator=g)
    out, _ = mha(x)
    out_perm, _ = mha(x[:, perm])
    torch.testing.assert_close(out_perm, out[:, perm])


def copy_into_torch_mha(ours: mt.MultiHeadAttention) -> nn.MultiheadAttention:
    ref = nn.MultiheadAttention(ours.d_model, ours.n_heads, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.w_q.weight, ours.w_k.weight, ours.w_v.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.w_q.bias, ours.w_k.bias, ours.w_v.bias]))
        ref.out_proj.load_state_dict(ours.w_o.state_dict())
    return ref


def test_mha_self_attention_matches_torch():
    ours = mt.MultiHeadAttention(16, 4).eval()
    ref = copy_into_torch_mha(ours)
    x, keep = torch.randn(2, 6, 16), torch.ones(2, 6, dtype=torch.bool)
    keep[1, 4:] = False
    out, weights = ours(x, mask=keep[:, None, None, :], need_weights=True)
    ref_out, ref_weights = ref(
        x, x, x, key_padding_mask=~keep, average_attn_weights=False
    )  # torch: True = ignore
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(weights, ref_weights)


def test_mha_cross_attention_and_causal_match_torch():
    ours = mt.MultiHeadAttention(16, 2).eval()
    ref = copy_into_torch_mha(ours)
    x, memory = torch.randn(2, 3, 16), torch.randn(2, 7, 16)
    torch.testing.assert_close(ours(x, memory)[0], ref(x, memory, memory)[0])
    causal = mt.causal_mask(6)
    y = torch.randn(2, 6, 16)
    torch.testing.assert_close(ours(y, is_causal=True)[0], ref(y, y, y, attn_mask=~causal)[0])
    torch.testing.assert_close(ours(y, mask=causal, need_weights=True)[0], ref(y, y, y, attn_mask=~causal)[0])


def test_kv_cache_incremental_equals_full():
    mha = mt.MultiHeadAttention(16, 4).eval()
    x = torch.randn(2, 7, 16)
    full, _ = mha(x, is_causal=True)
    cache = mt.KVCache(max_len=10)
    steps = [mha(x[:, :3], cache=cache, is_causal=True)[0]]  # a 3-token prompt, then one token at a time
    steps += [mha(x[:, t : t + 1], cache=cache, is_causal=True)[0] for t in range(3, 7)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full)
    assert cache.length == 7
    with pytest.raises(mt.ShapeError, match="KV cache full"):
        mha(torch.randn(2, 4, 16), cache=cache)


BAD = [
    (lambda q, k, v: (q.long(), k, v, None), TypeError, "q must be a floating-point"),
    (lambda q, k, v: (q, k[..., :4], v, None), ValueError, "share their last"),
    (lambda q, k, v: (q, k, v[:, :, :3], None), ValueError, "same number of keys"),
    (lambda q, k, v: (q, k, v, torch.ones(5, 5)), TypeError, "mask must be a bool tensor"),
    (lambda q, k, v: (q, k, v, torch.ones(4, 5, dtype=torch.bool)), ValueError, "does not broadcast"),
]


@pytest.mark.parametrize("make,error,message", BAD)
def test_bad_input_is_named(make, error, message):
    with pytest.raises(error, match=message):
        mt.scaled_dot_product_attention(*make(*qkv()))


def test_kv_cache_reorder_gathers_rows_and_keeps_appending():
    cache, k, v = mt.KVCache(max_len=6), torch.randn(3, 2, 4, 5), torch.randn(3, 2, 4, 5)
    cache.append(k, v)
    for index in (torch.tensor([2, 2, 0]), torch.tensor([1, 0, 0]), torch.tensor([0, 1, 2])):
        k, v = k.index_select(0, index), v.index_select(0, index)
        cache.reorder(index)  # swaps between two buffers: the second and third calls reuse them
        assert torch.equal(cache.keys, k) and torch.equal(cache.values, v)
    k_new, v_new = torch.randn(3, 2, 2, 5), torch.randn(3, 2, 2, 5)
    keys, values = cache.append(k_new, v_new)
    assert torch.equal(keys, torch.cat([k, k_new], dim=2)) and torch.equal(values, torch.cat([v, v_new], dim=2))
