"""What every model shares: the input embedding, input checks, and the per-layer KV cache.

The embedding turns token ids into vectors and adds position information (learned or
sinusoidal); with RoPE it instead hands rotation tables to the attention layers.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..attention import KVCache
from ..config import TransformerConfig
from ..errors import ShapeError, describe
from ..masks import check_attention_mask
from ..positional import LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding
from ..summary import count_parameters


class Embedding(nn.Module):
    """token ids (B, T) + positions (B, T) -> vectors (B, T, C), plus RoPE tables or None."""

    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        self.tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.positions = None
        self.rotary = None
        if cfg.pos_encoding == "learned":
            self.positions = LearnedPositionalEmbedding(cfg.max_len, cfg.d_model)
        elif cfg.pos_encoding == "sinusoidal":
            self.positions = SinusoidalPositionalEncoding(cfg.max_len, cfg.d_model)
        elif cfg.pos_encoding == "rope":
            self.rotary = RotaryEmbedding(cfg.d_head, cfg.max_len, cfg.rope_base)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, input_ids, positions):
        x = self.tokens(input_ids)  # (B, T, C)
        if self.positions is not None:
            x = x + self.positions(positions)
        rotary = self.rotary(positions) if self.rotary is not None else None
        return self.dropout(x), rotary


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Run without dropout (generation, explorers), then put the model back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class Cache:
    """The KV caches of a whole model: one entry per layer (a KVCache, or a pair for seq2seq)."""

    def __init__(self, layers: list):
        self.layers = layers

    @property
    def length(self) -> int:
        """How many positions are cached (of the self-attention, for seq2seq)."""
        first = self.layers[0]
        return (first[0] if isinstance(first, tuple) else first).length

    def reorder(self, index: torch.Tensor):
        for entry in self.layers:
            for c in entry if isinstance(entry, tuple) else (entry,):
                c.reorder(index)

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)


class ModelBase(nn.Module):
    """Shared helpers for GPT, MaskedLM and Seq2SeqTransformer."""

    config: TransformerConfig

    def _check_ids(self, ids, name="input_ids", past_length=0):
        """Raise a clear error unless ids is a (B, T) integer tensor of valid ids that fits the context."""
        if not isinstance(ids, torch.Tensor):
            raise TypeError(f"{name} must be a torch tensor of token ids, got {describe(ids)}")
        if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.is_complex():
            raise TypeError(f"{name} must hold integer token ids (torch.long), got dtype {ids.dtype}")
        if ids.dim() != 2:
            hint = f"; for a single sequence use {name}[None]" if ids.dim() == 1 else ""
            raise ShapeError(f"{name} must have shape (batch, seq_len), got {tuple(ids.shape)}{hint}")
        if ids.shape[0] == 0:
            raise ShapeError(f"{name} has batch size 0; give at least one sequence")
        if ids.shape[1] == 0:
            raise ShapeError(f"{name} is empty (seq_len 0); give at least one token")
        vocab = self.config.vocab_size
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= vocab:
            bad = low if low < 0 else high
            raise ValueError(f"{name} contains id {bad}, outside the vocabulary [0, {vocab - 1}]")
        total = past_length + ids.shape[1]
        if total > self.config.max_len:
            raise ShapeError(
                f"{name} has {ids.shape[1]} tokens (+{past_length} cached) = {total}, longer than the "
                f"model's context max_len={self.config.max_len}; keep the last {self.config.max_len} "
                f"tokens, e.g. {name}[:, -{self.config.max_len}:]"
            )

    def _positions(self, ids, past_length, position_ids):
        if position_ids is not None:
            if position_ids.shape[-1] != ids.shape[1]:
                raise ShapeError(
                    f"position_ids {tuple(position_ids.shape)} must match ids {tuple(ids.shape)}"
                )
            return position_ids.view(-1, ids.shape[1])
        return torch.arange(past_length, past_length + ids.shape[1], device=ids.device)[None]  # (1, T)

    @staticmethod
    def _check_mask(attention_mask, name, batch_size, length):
        try:
            check_attention_mask(attention_mask, batch_size, length)
        except (TypeError, ValueError) as e:
            raise type(e)(str(e).replace("attention_mask", name, 1)) from None

    def _new_kv_caches(self, n: int) -> list[KVCache]:
        return [KVCache(self.config.max_len) for _ in range(n)]

    def generate(self, *args, **kwargs):
        """Generate tokens with Hugging Face's keywords; see minitransformer.generation.generate."""
        from ..generation import generate  # generation.py imports the models

        return generate(self, *args, **kwargs)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return count_parameters(self, trainable_only)
