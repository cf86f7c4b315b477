"""Tokenizers: how text becomes the integer ids a Transformer reads, and how ids become text again.

Used by notebook 06 (tokenizers), and by the data and generation code. Two tokenizers share one interface,
one file per step of the lesson:

    base.py         what both share: special tokens, encode/decode, id checks, JSON files
    char.py         CharTokenizer: one id per character
    pretokenize.py  GPT-2's regex pre-split into chunks, and each chunk's UTF-8 bytes
    merging.py      the BPE step (merge the most frequent pair) and the pair counts that make training fast
    bpe.py          BPETokenizer: byte-level BPE in the style of GPT-2, its training and encoding
    gpt2_files.py   GPT-2's own files (vocab.json + merges.txt, or tokenizer.json), for BPETokenizer.from_gpt2

Special tokens such as "[MASK]" are whole strings with their own ids. Written literally in a text they encode
to that id; they are never split into characters or bytes.
"""

from __future__ import annotations

from ..errors import CheckpointError, describe
from .base import SPECIAL_TOKENS, Tokenizer, read_json
from .bpe import BPETokenizer
from .char import CharTokenizer
from .gpt2_files import find_gpt2_files
from .pretokenize import GPT2_SPLIT_PATTERN

__all__ = [
    "GPT2_SPLIT_PATTERN",
    "SPECIAL_TOKENS",
    "BPETokenizer",
    "CharTokenizer",
    "Tokenizer",
    "find_gpt2_files",
    "load_tokenizer",
    "tokenizer_from_dict",
]

_TOKENIZER_TYPES = {"char": CharTokenizer, "bpe": BPETokenizer}


def tokenizer_from_dict(d: dict) -> CharTokenizer | BPETokenizer:
    """Rebuild a tokenizer from `to_dict()` output, picking the class from d["type"]."""
    kind = d.get("type") if isinstance(d, dict) else None
    if kind not in _TOKENIZER_TYPES:
        raise CheckpointError(
            f"a tokenizer dict needs 'type' set to one of {sorted(_TOKENIZER_TYPES)}, got "
            f"{describe(kind) if isinstance(d, dict) else describe(d)}"
        )
    return _TOKENIZER_TYPES[kind].from_dict(d)


def load_tokenizer(path) -> CharTokenizer | BPETokenizer:
    """Read a tokenizer JSON file written by `save`, whichever class wrote it."""
    return tokenizer_from_dict(read_json(path))
