"""Seq2SeqTransformer: the encoder-decoder of "Attention Is All You Need".

    source ids -> encoder (N × self-attention, FFN) -> memory (B, S, C)
    target ids -> decoder (N × masked self-attention, cross-attention to memory, FFN) -> logits

The encoder reads the whole source at once; the decoder writes the target one token at a time,
looking back at its own tokens (causal) and across at every source token (cross-attention).
Source and target share one vocabulary and one embedding here.

Used in notebook 08 and by the bundled `dates-seq2seq` model.
"""

from __future__ import annotations

from torch import nn

from ..attention import KVCache
from ..config import TransformerConfig
from ..layers import DecoderLayer, EncoderLayer
from ..masks import causal_mask, combine_masks, padding_mask
from .base import Cache, Embedding, ModelBase
from .gpt import init_weights


class Seq2SeqTransformer(ModelBase):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.config = cfg
        self.embed = Embedding(cfg)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_layers))
        make_norm = lambda: nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps, bias=cfg.bias)  # noqa: E731
        self.encoder_norm = make_norm() if cfg.norm_first else None
        self.decoder_norm = make_norm() if cfg.norm_first else None
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.embed.tokens.weight
        self.apply(init_weights)

    def forward(self, src_ids, tgt_ids, src_mask=None, tgt_mask=None, *, return_attention=False):
        """src_ids: (B, S), tgt_ids: (B, T) -> logits (B, T, V).

        src_mask / tgt_mask: (B, S) / (B, T), 1 = real token, 0 = padding (Hugging Face convention).
        With return_attention=True returns (logits, {"encoder", "decoder", "cross"}), each a list with
        one tensor per layer: (B, H, S, S), (B, H, T, T) and (B, H, T, S).
        """
        memory, enc_att = self._encode(src_ids, src_mask, return_attention)
        logits, dec_att, cross_att = self._decode(
            tgt_ids, memory, src_mask, tgt_mask, None, None, return_attention
        )
        if return_attention:
            return logits, {"encoder": enc_att, "decoder": dec_att, "cross": cross_att}
        return logits

    def encode(self, src_ids, src_mask=None, *, return_attention=False):
        """Source ids (B, S) -> memory (B, S, C) [, encoder self-attention per layer]."""
        memory, attentions = self._encode(src_ids, src_mask, return_attention)
        return (memory, attentions) if return_attention else memory

    def decode(
        self,
        tgt_ids,
        memory,
        src_mask=None,
        tgt_mask=None,
        *,
        cache=None,
        position_ids=None,
        return_attention=False,
    ):
        """Target ids (B, T) and memory (B, S, C) -> logits (B, T, V) [, self and cross attention].

        tgt_mask covers past + current target tokens when a cache is used, like GPT's attention_mask.
        """
        out = self._decode(tgt_ids, memory, src_mask, tgt_mask, cache, position_ids, return_attention)
        return out if return_attention else out[0]

    def _encode(self, src_ids, src_mask, need_weights):
        self._check_ids(src_ids, "src_ids")
        mask = self._source_mask(src_ids, src_mask)
        x, rotary = self.embed(src_ids, self._positions(src_ids, 0, None))
        attentions = []
        for layer in self.encoder:
            x, weights = layer(x, mask, rotary=rotary, need_weights=need_weights)
            attentions.append(weights)
        if self.encoder_norm is not None:
            x = self.encoder_norm(x)
        return x, attentions

    def _decode(self, tgt_ids, memory, src_mask, tgt_mask, cache, position_ids, need_weights):
        past = cache.length if cache is not None else 0
        self._check_ids(tgt_ids, "tgt_ids", past_length=past)
        B, T = tgt_ids.shape
        self_mask, is_causal = None, True
        if tgt_mask is not None:
            self._check_mask(tgt_mask, "tgt_mask", B, past + T)
            self_mask = combine_masks(padding_mask(tgt_mask), causal_mask(T, past + T, tgt_ids.device))
            is_causal = False
        memory_mask = None
        if src_mask is not None:
            self._check_mask(src_mask, "src_mask", memory.shape[0], memory.shape[1])
            memory_mask = padding_mask(src_mask)  # (B, 1, 1, S)
        x, rotary = self.embed(tgt_ids, self._positions(tgt_ids, past, position_ids))
        self_atts, cross_atts = [], []
        for i, layer in enumerate(self.decoder):
            x, self_w, cross_w = layer(
                x,
                memory,
                self_mask,
                memory_mask,
                cache=cache[i] if cache is not None else None,
                rotary=rotary,
                need_weights=need_weights,
                is_causal=is_causal,
            )
            self_atts.append(self_w)
            cross_atts.append(cross_w)
        if self.decoder_norm is not None:
            x = self.decoder_norm(x)
        return self.lm_head(x), self_atts, cross_atts  # logits (B, T, V)

    def new_cache(self, source_length: int | None = None) -> Cache:
        """Per decoder layer: (self-attention cache, cross-attention cache filled on the first step)."""
        cross_len = source_length or self.config.max_len
        return Cache([(KVCache(self.config.max_len), KVCache(cross_len)) for _ in self.decoder])

    def _source_mask(self, src_ids, src_mask):
        if src_mask is None:
            return None
        self._check_mask(src_mask, "src_mask", *src_ids.shape)
        return padding_mask(src_mask)
