"""GPT: a decoder-only Transformer trained as a causal language model.

    ids -> token + position embedding -> N × (masked self-attention, FFN) -> LayerNorm -> logits

Every position predicts the *next* token, seeing only the tokens before it (the causal mask),
which is what lets the model generate text one token at a time. GPT is pre-trained with the
causal-LM objective (next-token prediction), not with masked-LM: that one is BERT's.

`forward` is the readable reference. `step` computes the same logits for one new token with a KV
cache, as plain tensor functions (the blocks' `step` methods): on a CPU the Python around a small
model's arithmetic costs more than the arithmetic (benchmarks/results/profile.txt).
tests/test_gpt_step.py keeps the two equal for every configuration.

Used in notebooks 05-07 and by the bundled `shakespeare-char` model.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import matvec, native_step
from ..config import TransformerConfig
from ..kv_cache import Cache
from ..layers import EncoderLayer, make_norm
from ..masks import causal_mask
from .base import ModelBase, init_weights
from .hf_gpt2 import read_hf_gpt2


class GPT(ModelBase):
    def __init__(self, cfg: TransformerConfig):
        super().__init__(cfg)  # self.config, self.embed
        self.blocks = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_layers))  # causal when run
        self.norm_f = make_norm(cfg) if cfg.norm_first else None
        self.lm_head = self._output_layer()
        self.apply(init_weights)

    def forward(self, input_ids, attention_mask=None, *, position_ids=None, cache=None, return_attention=False):
        """input_ids: (B, T) -> logits (B, T, V); with return_attention=True, (logits, attentions).

        attention_mask: (B, past + T), 1 = real token, 0 = padding (Hugging Face convention).
        cache: from `new_cache`; the model appends this call's keys/values to it.
        attentions: one (B, H, T, past + T) tensor per layer.
        """
        past = cache.length if cache is not None else 0
        self.check_ids(input_ids, past_length=past)
        B, T = input_ids.shape
        mask, is_causal = None, True
        if attention_mask is not None:  # padded keys are hidden, and then the future by hand
            keys = self.key_mask(attention_mask, "attention_mask", B, past + T)
            mask, is_causal = keys & causal_mask(T, past + T, input_ids.device), False
        x, rotary = self.embed(input_ids, self._positions(input_ids, past, position_ids))  # (B, T, C)
        attentions = []
        for i, block in enumerate(self.blocks):
            kv = cache[i] if cache is not None else None
            x, weights = block(x, mask, cache=kv, rotary=rotary, need_weights=return_attention, is_causal=is_causal)
            attentions.append(weights)
        if self.norm_f is not None:
            x = self.norm_f(x)
        logits = self.lm_head(x)  # (B, T, V)
        return (logits, attentions) if return_attention else logits

    def step(self, input_ids, positions, attention_mask, cache: Cache):
        """`forward` for one new token whose predecessors are all in the cache: (B, 1) -> logits (B, V).

        positions: (B, 1) or (1, 1); attention_mask: (B, L) over all L = cached + 1 tokens, or None.
        """
        x, rotary = self.embed(input_ids, positions)  # (B, 1, C)
        mask = None if attention_mask is None else attention_mask.bool()[:, None, None, :]  # (B, 1, 1, L)
        if matvec.native() and (logits := native_step.model_step(self, x, cache, mask, rotary)) is not None:
            return logits  # the same step in C (bfloat16, one row; native_step.py)
        for block, kv in zip(self.blocks, cache.layers):
            x = block.step(x, kv, mask, rotary)
        if self.norm_f is not None:
            x = self.norm_f.forward(x)
        if cache.head is None:  # gathered once per run, like the blocks' step weights
            cache.head = matvec.for_decoding(self.lm_head.weight, self.lm_head.bias)
        return matvec.linear(x[:, -1], *cache.head)  # (B, V)

    def new_cache(self) -> Cache:
        """An empty KV cache, one slot per block, for incremental decoding (see generation/)."""
        return Cache(self._kv_caches(len(self.blocks)), fast_step=self._can_step())

    def next_token_logits(self, input_ids, *, cache=None, attention_mask=None, position_ids=None,
                          return_attention=False):
        """The decoding interface: input_ids (B, T), the tokens the cache has not seen -> logits (B, V).

        attention_mask covers every token so far (cached ones too); one token after a filled cache
        takes the fast `step`. return_attention=True: (logits, one (B, H, T, L) tensor per layer).
        """
        if return_attention:  # the weights come from the modules' reference path
            logits, attentions = self(input_ids, attention_mask, position_ids=position_ids, cache=cache,
                                      return_attention=True)
            return logits[:, -1], attentions
        past = cache.length if cache is not None and cache.fast_step else 0
        if past and input_ids.shape[1] == 1:
            if position_ids is None:
                position_ids = torch.full((1, 1), past, device=input_ids.device)
            return self.step(input_ids, position_ids, attention_mask, cache)
        return self(input_ids, attention_mask, position_ids=position_ids, cache=cache)[:, -1]

    def _can_step(self) -> bool:
        """Whether `step` computes what the modules would: the fast attention path, eval mode, and no
        forward hook (e.g. one recording activations) that expects the modules to run."""
        if self.config.attn_impl != "fast" or self.training:
            return False
        return not any(m._forward_hooks or m._forward_pre_hooks for m in self.modules())

    @classmethod
    def from_hf_gpt2(cls, source, n_heads: int | None = None) -> GPT:
        """Build a GPT from Hugging Face GPT-2 weights: a GPT2LMHeadModel, its state dict, or a local
        safetensors file/folder. Nothing is downloaded. See hf_gpt2.py."""
        cfg, state = read_hf_gpt2(source, n_heads=n_heads)
        model = cls(cfg)
        model.load_state_dict(state, strict=True)
        return model.eval()
