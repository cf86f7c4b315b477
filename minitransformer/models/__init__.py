"""The three model families: decoder-only (GPT), encoder-only (MaskedLM), encoder-decoder (Seq2SeqTransformer)."""

from ..kv_cache import Cache
from .gpt import GPT
from .masked_lm import MaskedLM
from .seq2seq import Seq2SeqTransformer

__all__ = ["GPT", "MaskedLM", "Seq2SeqTransformer", "Cache"]
