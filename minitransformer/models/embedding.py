"""The input embedding every model starts with: token vectors plus position information.

    ids (B, T) -> token vectors (B, T, C) + position vectors (learned or sinusoidal)

With RoPE nothing is added here: the embedding hands rotation tables to the attention layers,
which rotate queries and keys instead (positional.py, notebook 03).
"""

from __future__ import annotations

from torch import nn

from ..config import TransformerConfig
from ..positional import LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding


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
