import dataclasses

import pytest

import minitransformer as mt


def test_defaults_and_d_ff():
    cfg = mt.TransformerConfig(d_model=64, n_heads=8)
    assert cfg.d_ff == 256 and cfg.d_head == 8
    assert dataclasses.replace(cfg, n_heads=4).d_head == 16
    assert mt.TransformerConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(d_model=30, n_heads=4), "d_model=30 must be divisible by n_heads=4"),
        (dict(n_layers=0), "n_layers must be a positive integer, got 0"),
        (dict(vocab_size=-3), "vocab_size must be a positive integer, got -3"),
        (dict(max_len=2.5), "max_len must be a positive integer, got 2.5"),
        (dict(d_ff=0), "d_ff must be a positive integer"),
        (dict(dropout=1.5), "dropout must be a number in \\[0, 1\\)"),
        (dict(pos_encoding="alibi"), "pos_encoding must be one of"),
        (dict(activation="swish"), "activation must be one of"),
        (dict(attn_impl="flash"), "attn_impl must be one of"),
        (dict(norm_first="yes"), "norm_first must be True or False"),
        (dict(d_model=12, n_heads=4, pos_encoding="rope"), "even d_head"),
        (dict(layer_norm_eps=0), "layer_norm_eps must be > 0"),
    ],
)
def test_invalid_config_names_the_argument(kwargs, message):
    with pytest.raises(mt.ConfigError, match=message):
        mt.TransformerConfig(**kwargs)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(mt.ConfigError, match="unknown config fields \\['n_embd'\\]"):
        mt.TransformerConfig.from_dict({"n_embd": 4})
