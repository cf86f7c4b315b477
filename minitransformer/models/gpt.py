"""GPT: a decoder-only Transformer trained as a causal language model.

    ids -> token + position embedding -> N × (masked self-attention, FFN) -> LayerNorm -> logits

Every position predicts the *next* token, seeing only the tokens before it (the causal mask),
which is what lets the model generate text one token at a time. GPT is pre-trained with the
causal-LM objective (next-token prediction), not with masked-LM: that one is BERT's.

Used in notebooks 04-06 and by the bundled `shakespeare-char` model.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import TransformerConfig
from ..layers import EncoderLayer
from ..masks import causal_mask, combine_masks, padding_mask
from .base import Cache, Embedding, ModelBase


class GPT(ModelBase):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.config = cfg
        self.embed = Embedding(cfg)
        self.blocks = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_layers))  # causal when run
        self.norm_f = (
            nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, bias=cfg.bias) if cfg.norm_first else None
        )
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.embed.tokens.weight  # one matrix reads and writes tokens
        self.apply(init_weights)

    def forward(
        self, input_ids, attention_mask=None, *, position_ids=None, cache=None, return_attention=False
    ):
        """input_ids: (B, T) -> logits (B, T, V); with return_attention=True, (logits, attentions).

        attention_mask: (B, past + T), 1 = real token, 0 = padding (Hugging Face convention).
        cache: from `new_cache`; the model appends this call's keys/values to it.
        attentions: one (B, H, T, past + T) tensor per layer.
        """
        past = cache.length if cache is not None else 0
        self._check_ids(input_ids, past_length=past)
        B, T = input_ids.shape
        mask, is_causal = None, True
        if attention_mask is not None:
            self._check_mask(attention_mask, "attention_mask", B, past + T)
            mask = combine_masks(padding_mask(attention_mask), causal_mask(T, past + T, input_ids.device))
            is_causal = False  # the combined mask already hides the future
        x, rotary = self.embed(input_ids, self._positions(input_ids, past, position_ids))  # (B, T, C)
        attentions = []
        for i, block in enumerate(self.blocks):
            x, weights = block(
                x,
                mask,
                cache=cache[i] if cache is not None else None,
                rotary=rotary,
                need_weights=return_attention,
                is_causal=is_causal,
            )
            attentions.append(weights)
        if self.norm_f is not None:
            x = self.norm_f(x)
        logits = self.lm_head(x)  # (B, T, V)
        return (logits, attentions) if return_attention else logits

    def new_cache(self) -> Cache:
        """An empty KV cache, one slot per block, for incremental decoding (see generation.py)."""
        return Cache(self._new_kv_caches(len(self.blocks)))

    @classmethod
    def from_hf_gpt2(cls, source, n_heads: int | None = None) -> GPT:
        """Build a GPT from Hugging Face GPT-2 weights: a GPT2LMHeadModel, its state dict, or a local
        safetensors file/folder. Nothing is downloaded. See hf_gpt2.py."""
        from ..hf_gpt2 import gpt_from_hf_gpt2  # hf_gpt2 imports this module

        return gpt_from_hf_gpt2(source, n_heads=n_heads)


def init_weights(module: nn.Module):
    """GPT-2's initialisation: normal(0, 0.02) weights, zero biases, unit LayerNorms."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def causal_positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding: for mask [0, 0, 1, 1] -> [0, 0, 0, 1] (as Hugging Face does)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
