"""Seq2SeqTransformer: the encoder-decoder of "Attention Is All You Need".

    source ids -> encoder (N × self-attention, FFN) -> memory (B, S, C)
    target ids -> decoder (N × masked self-attention, cross-attention to memory, FFN) -> logits

The encoder reads the whole source at once; the decoder writes the target one token at a time,
looking back at its own tokens (causal) and across at every source token (cross-attention).
Source and target share one vocabulary and one embedding here.

Used in notebook 09 and by the bundled `dates-seq2seq` model.
"""

from __future__ import annotations

from torch import nn

from .. import checks
from ..config import TransformerConfig
from ..errors import ConfigError
from ..kv_cache import Cache, KVCache
from ..layers import DecoderLayer, EncoderLayer, make_norm
from ..masks import causal_mask
from .base import ModelBase, init_weights


class Seq2SeqTransformer(ModelBase):
    def __init__(self, cfg: TransformerConfig):
        super().__init__(cfg)  # self.config, self.embed (shared by source and target)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_layers))
        self.encoder_norm = make_norm(cfg) if cfg.norm_first else None
        self.decoder_norm = make_norm(cfg) if cfg.norm_first else None
        self.lm_head = self._output_layer()
        self.apply(init_weights)

    def forward(self, src_ids, tgt_ids, src_mask=None, tgt_mask=None, *, return_attention=False):
        """src_ids: (B, S), tgt_ids: (B, T) -> logits (B, T, V).

        src_mask / tgt_mask: (B, S) / (B, T), 1 = real token, 0 = padding (Hugging Face convention).
        With return_attention=True returns (logits, {"encoder", "decoder", "cross"}), each a list with
        one tensor per layer: (B, H, S, S), (B, H, T, T) and (B, H, T, S).
        """
        self.check_ids(src_ids, "src_ids")
        self_mask, memory_mask = self._masks(tgt_ids, tgt_mask, src_mask, src_ids.shape, past=0)
        memory, enc_att = self._encode(src_ids, memory_mask, return_attention)
        logits, dec_att, cross_att = self._decode(tgt_ids, memory, self_mask, memory_mask, None, None,
                                                  return_attention)
        if return_attention:
            return logits, {"encoder": enc_att, "decoder": dec_att, "cross": cross_att}
        return logits

    def encode(self, src_ids, src_mask=None, *, return_attention=False):
        """Source ids (B, S) -> memory (B, S, C) [, encoder self-attention per layer]."""
        self.check_ids(src_ids, "src_ids")
        memory_mask = None if src_mask is None else self.key_mask(src_mask, "src_mask", *src_ids.shape)
        memory, attentions = self._encode(src_ids, memory_mask, return_attention)
        return (memory, attentions) if return_attention else memory

    def decode(self, tgt_ids, memory, src_mask=None, tgt_mask=None, *, cache=None, position_ids=None,
               return_attention=False):
        """Target ids (B, T) and memory (B, S, C) -> logits (B, T, V) [, self and cross attention].

        tgt_mask covers past + current target tokens when a cache is used, like GPT's attention_mask.
        """
        past = cache.length if cache is not None else 0
        self_mask, memory_mask = self._masks(tgt_ids, tgt_mask, src_mask, memory.shape[:2], past)
        out = self._decode(tgt_ids, memory, self_mask, memory_mask, cache, position_ids, return_attention)
        return out if return_attention else out[0]

    def _masks(self, tgt_ids, tgt_mask, src_mask, source_shape, past):
        """Check the target side; return the decoder's self-attention mask and the memory mask (or None)."""
        self.check_ids(tgt_ids, "tgt_ids", past_length=past)
        B, T = tgt_ids.shape
        self_mask = None
        if tgt_mask is not None:  # padded target keys are hidden, and then the future by hand
            keys = self.key_mask(tgt_mask, "tgt_mask", B, past + T)
            self_mask = keys & causal_mask(T, past + T, tgt_ids.device)
        memory_mask = None if src_mask is None else self.key_mask(src_mask, "src_mask", *source_shape)
        return self_mask, memory_mask  # (B, 1, T, past + T), (B, 1, 1, S)

    def _encode(self, src_ids, mask, need_weights):
        return self._encoder_stack(src_ids, mask, self.encoder, self.encoder_norm, need_weights=need_weights)

    def _decode(self, tgt_ids, memory, self_mask, memory_mask, cache, position_ids, need_weights):
        past = cache.length if cache is not None else 0
        x, rotary = self.embed(tgt_ids, self._positions(tgt_ids, past, position_ids))
        self_atts, cross_atts = [], []
        for i, layer in enumerate(self.decoder):
            x, self_w, cross_w = layer(
                x, memory, self_mask, memory_mask, cache=cache[i] if cache is not None else None,
                rotary=rotary, need_weights=need_weights, is_causal=self_mask is None,
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

    def source_inputs(self, src_ids=None, src_mask=None) -> dict:
        """The decoding interface: the checked source that every generated token is conditioned on."""
        if src_ids is None:
            raise ConfigError("a Seq2SeqTransformer generates from a source: pass src_ids=(B, S) token ids "
                              "(input_ids, if given, is the start of the decoder's output)")
        self.check_ids(src_ids, "src_ids")
        if src_mask is not None:
            checks.attention_mask("src_mask", src_mask, *src_ids.shape)
        return {"src_ids": src_ids, "src_mask": src_mask}

    def next_token_logits(self, input_ids, *, src_ids, src_mask=None, cache=None, attention_mask=None,
                          position_ids=None, return_attention=False):
        """The decoding interface: decoder ids (B, T) the cache has not seen -> logits (B, V).

        The encoder runs once per generation (its output is kept in the cache), or at every step
        without a cache. return_attention=True: (logits, {"decoder": [...], "cross": [...]}), one
        (B, H, T, L) and one (B, H, T, S) tensor per layer."""
        memory = None if cache is None else cache.memory
        if memory is None:
            memory = self.encode(src_ids, src_mask)  # (B, S, C)
            if cache is not None:
                cache.memory = memory
        out = self.decode(input_ids, memory, src_mask, attention_mask, cache=cache, position_ids=position_ids,
                          return_attention=return_attention)
        if return_attention:
            logits, self_attentions, cross_attentions = out
            return logits[:, -1], {"decoder": self_attentions, "cross": cross_attentions}
        return out[:, -1]
