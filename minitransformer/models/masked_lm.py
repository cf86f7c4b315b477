"""MaskedLM: an encoder-only Transformer trained BERT-style, by filling in masked tokens.

    ids (some replaced by [MASK]) -> embedding -> N × (self-attention, FFN) -> MLM head -> logits

Unlike GPT, every position sees the whole sequence (no causal mask), so the model can use the
words on both sides of a gap. It cannot generate text left to right; it fills in blanks.

Used in notebook 08 and by the bundled `shakespeare-mlm` model.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..config import TransformerConfig
from ..layers import EncoderLayer, make_norm
from .base import ModelBase, init_weights


class MaskedLM(ModelBase):
    def __init__(self, cfg: TransformerConfig):
        super().__init__(cfg)  # self.config, self.embed
        self.blocks = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_layers))
        self.norm_f = make_norm(cfg) if cfg.norm_first else None
        # BERT's prediction head: a dense layer and a LayerNorm before projecting to the vocabulary
        self.head_dense = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.head_norm = make_norm(cfg)
        self.lm_head = self._output_layer(bias=True)
        self.apply(init_weights)

    def forward(self, input_ids, attention_mask=None, *, position_ids=None, return_attention=False):
        """input_ids: (B, T) -> logits (B, T, V); with return_attention=True, (logits, attentions).

        attention_mask: (B, T), 1 = real token, 0 = padding; padded keys are hidden from every query.
        """
        self.check_ids(input_ids)
        mask = None
        if attention_mask is not None:  # padded keys are hidden from every query
            mask = self.key_mask(attention_mask, "attention_mask", *input_ids.shape)  # (B, 1, 1, T)
        x, attentions = self._encoder_stack(input_ids, mask, self.blocks, self.norm_f, position_ids, return_attention)
        x = self.head_norm(F.gelu(self.head_dense(x)))
        logits = self.lm_head(x)  # (B, T, V)
        return (logits, attentions) if return_attention else logits
