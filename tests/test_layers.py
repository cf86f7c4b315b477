"""EncoderLayer / DecoderLayer equal torch.nn.TransformerEncoderLayer / TransformerDecoderLayer."""

import pytest
import torch
from torch import nn

import minitransformer as mt


def cfg(norm_first, activation="relu"):
    return mt.TransformerConfig(d_model=16, n_heads=4, d_ff=32, norm_first=norm_first, activation=activation)


def copy_attention(ours: mt.MultiHeadAttention, ref: nn.MultiheadAttention):
    ref.in_proj_weight.copy_(torch.cat([ours.w_q.weight, ours.w_k.weight, ours.w_v.weight]))
    ref.in_proj_bias.copy_(torch.cat([ours.w_q.bias, ours.w_k.bias, ours.w_v.bias]))
    ref.out_proj.load_state_dict(ours.w_o.state_dict())


def copy_common(ours, ref, norms):
    ref.linear1.load_state_dict(ours.ffn.linear1.state_dict())
    ref.linear2.load_state_dict(ours.ffn.linear2.state_dict())
    for name in norms:
        getattr(ref, name).load_state_dict(getattr(ours, name).state_dict())


def randomise(module):
    with torch.no_grad():  # LayerNorms start at (1, 0); random values make the comparison meaningful
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return module


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_matches_torch(norm_first, activation):
    ours = randomise(mt.EncoderLayer(cfg(norm_first, activation))).double().eval()
    ref = (
        nn.TransformerEncoderLayer(
            16, 4, 32, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first
        )
        .double()
        .eval()
    )
    with torch.no_grad():
        copy_attention(ours.self_attn, ref.self_attn)
        copy_common(ours, ref, ["norm1", "norm2"])
    x = torch.randn(3, 5, 16, dtype=torch.float64)
    keep = torch.ones(3, 5, dtype=torch.bool)
    keep[2, 3:] = False
    torch.testing.assert_close(ours(x)[0], ref(x))
    ours_out = ours(x, mask=keep[:, None, None, :], need_weights=True)[0]
    ref_out = ref(x, src_key_padding_mask=~keep)
    torch.testing.assert_close(ours_out[keep], ref_out[keep])  # torch leaves padded rows undefined
    causal = mt.causal_mask(5)
    torch.testing.assert_close(ours(x, is_causal=True)[0], ref(x, src_mask=~causal))


@pytest.mark.parametrize("norm_first", [True, False])
def test_decoder_layer_matches_torch(norm_first):
    ours = randomise(mt.DecoderLayer(cfg(norm_first))).double().eval()
    ref = (
        nn.TransformerDecoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=norm_first)
        .double()
        .eval()
    )
    with torch.no_grad():
        copy_attention(ours.self_attn, ref.self_attn)
        copy_attention(ours.cross_attn, ref.multihead_attn)
        copy_common(ours, ref, ["norm1", "norm2", "norm3"])
    x, memory = torch.randn(2, 4, 16, dtype=torch.float64), torch.randn(2, 6, 16, dtype=torch.float64)
    src_keep = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    out, self_w, cross_w = ours(x, memory, memory_mask=src_keep[:, None, None, :], need_weights=True)
    expected = ref(x, memory, tgt_mask=~mt.causal_mask(4), memory_key_padding_mask=~src_keep)
    torch.testing.assert_close(out, expected)
    assert self_w.shape == (2, 4, 4, 4) and cross_w.shape == (2, 4, 4, 6)
    assert (cross_w[1, :, :, 3:] == 0).all()  # padded source positions get no attention


def test_feed_forward_is_positionwise():
    ffn = mt.FeedForward(8, 16)
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(ffn(x)[:, 2], ffn(x[:, 2:3])[:, 0])
