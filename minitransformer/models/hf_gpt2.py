"""Read Hugging Face GPT-2 weights into this package's readable GPT (`GPT.from_hf_gpt2`).

GPT-2 (Radford et al., 2019) is a pre-LN, decoder-only Transformer with learned positions,
tied input/output embeddings and the tanh approximation of GELU. Its checkpoints use
`Conv1D` layers whose weight matrices are stored transposed, (in, out), and fuse the query,
key and value projections into one `c_attn` matrix; this module unpacks them into our
`w_q`, `w_k`, `w_v`, `w_o`, `linear1`, `linear2`.

Works offline: give it a GPT2LMHeadModel you built or loaded yourself, its state dict, or a
local `model.safetensors` (optionally with the `config.json` beside it). tests/test_hf_gpt2.py
checks the logits equal Hugging Face's on a randomly initialised model.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..config import TransformerConfig
from ..errors import CheckpointError, ConfigError, describe

_ACTIVATION = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}


def read_hf_gpt2(source, n_heads: int | None = None) -> tuple[TransformerConfig, dict]:
    """source: GPT2LMHeadModel | state dict | path to a .safetensors file or a folder holding one.

    Returns our config and a state dict with our names, for `GPT(cfg).load_state_dict`."""
    hf_config = {}
    if hasattr(source, "state_dict") and hasattr(source, "config"):  # a transformers model
        hf_config = source.config.to_dict()
        state = source.state_dict()
    elif isinstance(source, dict):
        state = source
    elif isinstance(source, (str, Path)):
        state, hf_config = _read_local(Path(source))
    else:
        raise TypeError(f"source must be a GPT2LMHeadModel, a state dict or a path, got {describe(source)}")
    state = {re.sub(r"^transformer\.", "", k): v for k, v in state.items()}
    cfg = _config_from(state, hf_config, n_heads)
    return cfg, convert_gpt2_state_dict(state, cfg)


def _read_local(path: Path):
    file = path / "model.safetensors" if path.is_dir() else path
    if not file.exists():
        raise FileNotFoundError(f"no GPT-2 weights at {str(file)!r} (expected a .safetensors file)")
    if file.suffix != ".safetensors":
        raise CheckpointError(f"{file.name!r} is not a .safetensors file; pickled weights are never loaded")
    config_file = file.with_name("config.json")
    hf_config = json.loads(config_file.read_text()) if config_file.exists() else {}
    return load_file(str(file)), hf_config


def _config_from(state, hf_config, n_heads) -> TransformerConfig:
    try:
        vocab_size, d_model = state["wte.weight"].shape
        max_len = state["wpe.weight"].shape[0]
        d_ff = state["h.0.mlp.c_fc.weight"].shape[1]
    except KeyError as e:
        raise CheckpointError(f"not a GPT-2 state dict: missing {e.args[0]!r}") from None
    n_layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"h\.(\d+)\.", k)))
    n_heads = n_heads or hf_config.get("n_head")
    if n_heads is None:
        raise ConfigError(
            "n_heads is not stored in GPT-2 weights: pass n_heads=... or keep config.json beside them"
        )
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
        if hf_config.get(flag):
            raise ConfigError(f"GPT-2 option {flag}=True is not supported by minitransformer's GPT")
    if hf_config.get("scale_attn_weights") is False:
        raise ConfigError(
            "GPT-2 option scale_attn_weights=False is not supported (we always scale by 1/sqrt(d_head))"
        )
    activation = hf_config.get("activation_function", "gelu_new")
    if activation not in _ACTIVATION:
        raise ConfigError(
            f"GPT-2 activation_function={activation!r} is not supported; known: {sorted(_ACTIVATION)}"
        )
    return TransformerConfig(
        vocab_size=vocab_size,
        d_model=d_model,
        n_heads=n_heads,
        n_layers=n_layers,
        d_ff=d_ff,
        max_len=max_len,
        dropout=0.0,
        norm_first=True,
        pos_encoding="learned",
        tie_weights=True,
        activation=_ACTIVATION[activation],
        bias=True,
        layer_norm_eps=hf_config.get("layer_norm_epsilon", 1e-5),
    )


def convert_gpt2_state_dict(state, cfg: TransformerConfig) -> dict:
    """GPT-2 names and (in, out) Conv1D layouts -> our names and nn.Linear's (out, in)."""
    out = {
        "embed.tokens.weight": state["wte.weight"],
        "embed.positions.weight": state["wpe.weight"],
        "norm_f.weight": state["ln_f.weight"],
        "norm_f.bias": state["ln_f.bias"],
        "lm_head.weight": state["wte.weight"],  # tied
    }
    for i in range(cfg.n_layers):
        hf, ours = f"h.{i}.", f"blocks.{i}."
        q, k, v = state[hf + "attn.c_attn.weight"].t().chunk(3, dim=0)  # each (C, C)
        qb, kb, vb = state[hf + "attn.c_attn.bias"].chunk(3)
        out |= {
            ours + "self_attn.w_q.weight": q,
            ours + "self_attn.w_q.bias": qb,
            ours + "self_attn.w_k.weight": k,
            ours + "self_attn.w_k.bias": kb,
            ours + "self_attn.w_v.weight": v,
            ours + "self_attn.w_v.bias": vb,
            ours + "self_attn.w_o.weight": state[hf + "attn.c_proj.weight"].t(),
            ours + "self_attn.w_o.bias": state[hf + "attn.c_proj.bias"],
            ours + "ffn.linear1.weight": state[hf + "mlp.c_fc.weight"].t(),
            ours + "ffn.linear1.bias": state[hf + "mlp.c_fc.bias"],
            ours + "ffn.linear2.weight": state[hf + "mlp.c_proj.weight"].t(),
            ours + "ffn.linear2.bias": state[hf + "mlp.c_proj.bias"],
            ours + "norm1.weight": state[hf + "ln_1.weight"],
            ours + "norm1.bias": state[hf + "ln_1.bias"],
            ours + "norm2.weight": state[hf + "ln_2.weight"],
            ours + "norm2.bias": state[hf + "ln_2.bias"],
        }
    return {k: v.detach().to(torch.float32).contiguous() for k, v in out.items()}
