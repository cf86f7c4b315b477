"""What every model shares: initialisation, input checks, positions, and the decoding interface.

The decoding loop (generation/) knows no model class. It asks a model for:

    model.source_inputs(src_ids=..., src_mask=...)  the checked inputs it conditions on ({} for GPT)
    model.new_cache(...)                             an empty KV cache for incremental decoding
    model.next_token_logits(ids, cache=..., ...)     (B, V) scores of the token after ids

GPT and Seq2SeqTransformer implement the last two; a MaskedLM has no next token to predict.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import checks
from ..config import TransformerConfig
from ..errors import ConfigError, ShapeError
from ..kv_cache import KVCache
from ..masks import padding_mask
from .embedding import Embedding


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


class ModelBase(nn.Module):
    """Shared parts of GPT, MaskedLM and Seq2SeqTransformer: the config, the embedding, the output layer."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.config = cfg
        self.embed = Embedding(cfg)

    def _output_layer(self, bias: bool = False) -> nn.Linear:
        """d_model -> vocabulary scores; with tie_weights it shares the token embedding's matrix."""
        lm_head = nn.Linear(self.config.d_model, self.config.vocab_size, bias=bias)
        if self.config.tie_weights:
            lm_head.weight = self.embed.tokens.weight  # one matrix reads and writes tokens
        return lm_head

    def check_ids(self, ids, name="input_ids", past_length=0):
        """Raise a clear error unless ids is a (B, T) integer tensor of valid ids that fits the context."""
        checks.token_ids(name, ids, self.config.vocab_size)
        if ids.shape[0] == 0:
            raise ShapeError(f"{name} has batch size 0; give at least one sequence")
        if ids.shape[1] == 0:
            raise ShapeError(f"{name} is empty (seq_len 0); give at least one token")
        total, max_len = past_length + ids.shape[1], self.config.max_len
        if total > max_len:
            raise ShapeError(
                f"{name} has {ids.shape[1]} tokens (+{past_length} cached) = {total}, longer than the "
                f"model's context max_len={max_len}; keep the last {max_len} tokens, e.g. {name}[:, -{max_len}:]"
            )

    def _encoder_stack(self, ids, mask, layers, final_norm, position_ids=None, need_weights=False):
        """embed -> N × EncoderLayer (no causal mask) -> final LayerNorm: BERT's body and seq2seq's encoder.

        Returns (x (B, T, C), attention weights per layer)."""
        x, rotary = self.embed(ids, self._positions(ids, 0, position_ids))
        attentions = []
        for layer in layers:
            x, weights = layer(x, mask, rotary=rotary, need_weights=need_weights)
            attentions.append(weights)
        return (x if final_norm is None else final_norm(x)), attentions

    @staticmethod
    def key_mask(attention_mask, name, batch_size, length):
        """Check a (B, L) 0/1 mask of real tokens, then -> (B, 1, 1, L) bool, True = may attend."""
        checks.attention_mask(name, attention_mask, batch_size, length)
        return padding_mask.__wrapped__(attention_mask)  # checked just above

    @staticmethod
    def _positions(ids, past_length, position_ids):
        """(1, T) positions past .. past + T - 1, or the given position_ids (e.g. skipping left padding)."""
        if position_ids is None:
            return torch.arange(past_length, past_length + ids.shape[1], device=ids.device)[None]
        if position_ids.shape[-1] != ids.shape[1]:
            raise ShapeError(f"position_ids {tuple(position_ids.shape)} must match ids {tuple(ids.shape)}")
        return position_ids.view(-1, ids.shape[1])

    def source_inputs(self, src_ids=None, src_mask=None) -> dict:
        """The checked inputs that decoding conditions on besides the prompt: none for a decoder-only model."""
        if src_ids is not None or src_mask is not None:
            raise ConfigError("src_ids and src_mask are for a Seq2SeqTransformer; a GPT continues input_ids")
        return {}

    def _kv_caches(self, n: int) -> list[KVCache]:
        return [KVCache(self.config.max_len) for _ in range(n)]

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
