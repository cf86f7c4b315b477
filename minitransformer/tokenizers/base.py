"""What every tokenizer shares: special tokens, encode/decode, id checks, and JSON files.

A subclass (char.py, bpe.py) says only how ordinary text becomes ids and back:

    _encode_ordinary(piece, start) -> ids    text with no special token in it
    _ids_to_text(ids) -> str                 ids already checked to be in range
    _vocabulary_dict() / from_dict(d)        the vocabulary as `save` writes it, and the way back

`encode` first cuts the special tokens out of the text, so that "[MASK]" written in a text is one id and never
reaches the subclass as characters or bytes.
"""

from __future__ import annotations

import contextlib
import json
import operator
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

import regex
import torch

from .. import files
from ..errors import CheckpointError, ShapeError, describe

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]", "[MASK]")
FORMAT_VERSION = 1  # stored in to_dict() so a future format change can be detected on load


def _special_id(token: str) -> property:
    """A property: the id of the special token `token`, or None when the tokenizer does not have it."""
    return property(lambda self: self._special_to_id.get(token), doc=f"The id of {token}, or None.")


class Tokenizer:
    """Base class of CharTokenizer and BPETokenizer: special tokens, id checks, decoding, and JSON files."""

    kind = ""  # "char" or "bpe": the "type" written by to_dict()

    def _setup_special_tokens(self, special_tokens: Sequence[str], first_id: int) -> None:
        tokens = _checked_special_tokens(special_tokens)
        self.special_tokens = tuple(tokens)
        self._special_to_id = {tok: first_id + i for i, tok in enumerate(tokens)}
        self._id_to_special = {i: tok for tok, i in self._special_to_id.items()}
        # Longest first, so that a special token that contains another one wins.
        alternatives = "|".join(regex.escape(t) for t in sorted(tokens, key=len, reverse=True))
        self._special_re = regex.compile(f"({alternatives})") if tokens else None

    def _split_specials(self, text: str) -> Iterator[tuple[str, int, int | None]]:
        """Yield (piece, start position, special id or None): the text between special tokens, and each one."""
        pieces = self._special_re.split(text) if self._special_re else [text]
        start = 0
        for k, piece in enumerate(pieces):  # re.split with a group puts the separators at odd indices
            if piece:
                yield piece, start, self._special_to_id[piece] if k % 2 else None
            start += len(piece)

    def encode(self, text: str) -> list[int]:
        """Turn `text` into a list of token ids; special tokens written in the text become their ids."""
        require_text(text, hint="; encode one string at a time")
        ids: list[int] = []
        for piece, start, special_id in self._split_specials(text):
            if special_id is not None:
                ids.append(special_id)
            else:
                ids.extend(self._encode_ordinary(piece, start))
        return ids

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Turn ids (a list, tuple or 1-D integer tensor) back into text, optionally dropping special tokens."""
        ids = self._check_ids(ids)
        if skip_special_tokens:
            ids = [i for i in ids if i not in self._id_to_special]
        return self._ids_to_text(ids)

    def _check_ids(self, ids) -> list[int]:
        """Accept a list, tuple or 1-D integer tensor of ids in range(vocab_size); return a list of ints."""
        if isinstance(ids, torch.Tensor):
            ids = _tensor_ids(ids)
        if isinstance(ids, str) or not isinstance(ids, Iterable):
            raise TypeError(f"ids must be a list, tuple or 1-D tensor of ints, got {describe(ids)}")
        checked = []
        for i in ids:
            try:
                i = operator.index(i)  # plain and numpy integers pass; floats and strings do not
            except TypeError:
                raise TypeError(f"ids must be integers, got {describe(i)}") from None
            if not 0 <= i < self.vocab_size:
                raise ValueError(
                    f"token id {i} is outside the vocabulary: ids go from 0 to "
                    f"{self.vocab_size - 1} (vocab_size={self.vocab_size})"
                )
            checked.append(i)
        return checked

    @property
    def vocab_size(self) -> int:
        """Number of distinct ids; valid ids are 0 .. vocab_size - 1."""
        return len(self._tokens)

    def __len__(self) -> int:
        return self.vocab_size

    pad_token_id = _special_id("[PAD]")
    unk_token_id = _special_id("[UNK]")
    bos_token_id = _special_id("[BOS]")
    eos_token_id = _special_id("[EOS]")
    mask_token_id = _special_id("[MASK]")

    @property
    def special_token_ids(self) -> frozenset[int]:
        return frozenset(self._id_to_special)

    def id_to_token(self, i: int) -> str:
        """The printable string of token `i` (a special token's name, a character, or a byte sequence)."""
        return self._tokens[self._check_ids([i])[0]]

    def convert_ids_to_tokens(self, ids) -> list[str]:
        return [self._tokens[i] for i in self._check_ids(ids)]

    def to_dict(self) -> dict:
        """What `save` writes: the type, the format version, the vocabulary and the special tokens."""
        return {
            "type": self.kind,
            "version": FORMAT_VERSION,
            **self._vocabulary_dict(),
            "special_tokens": list(self.special_tokens),
        }

    def save(self, path) -> None:
        """Write the tokenizer to a JSON file (UTF-8); read it back with `load` or `load_tokenizer`.

        The file is replaced atomically (files.py): a full disk or a crash keeps the previous one.
        """
        # ensure_ascii keeps the file valid UTF-8 even if the vocabulary holds unpaired surrogates.
        text = json.dumps(self.to_dict(), indent=1, ensure_ascii=True)
        files.write_bytes(path, text.encode("utf-8"), "tokenizer file")

    @classmethod
    def load(cls, path):
        """Read a tokenizer written by `save`; a missing, garbled or wrong-type file raises CheckpointError."""
        data = read_json(path)
        if isinstance(data, dict) and data.get("type") != cls.kind:
            raise CheckpointError(
                f"{str(path)!r} holds a tokenizer of type {data.get('type')!r}, not "
                f"{cls.kind!r}; load_tokenizer(path) picks the right class itself"
            )
        return cls.from_dict(data)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(vocab_size={self.vocab_size}, special_tokens={list(self.special_tokens)})"
        )


def require_text(text, hint: str = "") -> None:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {describe(text)}{hint}")


# Limits on special tokens, which a file may carry: each is a branch of the regex that `encode` runs first,
# and `regex` searches a long literal super-linearly (one token of 4,096 characters: 30 s to encode 16 kB).
MAX_SPECIAL_TOKENS = 1024
MAX_SPECIAL_TOKEN_LENGTH = 64  # characters; "<|reserved_special_token_250|>" has 30


def _checked_special_tokens(special_tokens: Sequence[str]) -> list[str]:
    """special_tokens as a list of at most MAX_SPECIAL_TOKENS distinct, non-empty strings, none too long."""
    if isinstance(special_tokens, str):
        raise TypeError(
            f"special_tokens must be a sequence of strings, got the string {special_tokens!r}; "
            f"write special_tokens=({special_tokens!r},)"
        )
    tokens = list(special_tokens)
    if len(tokens) > MAX_SPECIAL_TOKENS:
        raise ValueError(
            f"special_tokens holds {len(tokens):,} tokens, more than "
            f"MAX_SPECIAL_TOKENS = {MAX_SPECIAL_TOKENS}"
        )
    for tok in tokens:
        if not isinstance(tok, str) or not 0 < len(tok) <= MAX_SPECIAL_TOKEN_LENGTH:
            raise ValueError(
                f"special_tokens must be non-empty strings of at most MAX_SPECIAL_TOKEN_LENGTH = "
                f"{MAX_SPECIAL_TOKEN_LENGTH} characters, got {describe(tok)} "
                f"(the package knows {list(SPECIAL_TOKENS)})"
            )
    repeated = sorted(tok for tok, n in Counter(tokens).items() if n > 1)
    if repeated:
        raise ValueError(f"special_tokens contains {repeated} more than once; each needs a single id")
    return tokens


def _tensor_ids(ids: torch.Tensor) -> list:
    """A 1-D integer tensor of ids as a list (a batch or a float tensor is refused)."""
    if ids.dim() != 1:
        raise ShapeError(
            f"ids must be a 1-D tensor (T,), got shape {tuple(ids.shape)}; decode one "
            "sequence at a time, e.g. decode(batch[0])"
        )
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise TypeError(f"ids must be an integer tensor, got dtype {ids.dtype}; use ids.long()")
    return ids.tolist()


# ----------------------------------------------------------------------------- files and dicts


def read_json(path) -> dict:
    """The JSON in the tokenizer file at `path`; any way of failing to read it becomes a CheckpointError.

    Only a regular file of at most files.MAX_JSON_BYTES is read (a FIFO or /dev/zero is refused at once).
    """
    try:
        return files.read_json(path, "tokenizer", hint="; write one with tokenizer.save(path)")
    except FileNotFoundError as e:
        raise CheckpointError(str(e)) from None


def check_dict(d, kind: str, fields: dict[str, type]) -> None:
    """Check the shape of to_dict() output before building from it."""
    if not isinstance(d, dict):
        raise CheckpointError(f"a {kind} tokenizer must be stored as a JSON object (dict), got {describe(d)}")
    if d.get("type") != kind:
        raise CheckpointError(f"expected a tokenizer with 'type': {kind!r}, got {describe(d.get('type'))}")
    if d.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise CheckpointError(
            f"tokenizer format version {describe(d['version'])} is not supported; this "
            f"version of minitransformer reads version {FORMAT_VERSION}"
        )
    for name, expected in fields.items():
        if name not in d:
            raise CheckpointError(f"the {kind} tokenizer dict has no {name!r} entry (it has {sorted(d)})")
        if not isinstance(d[name], expected):
            raise CheckpointError(
                f"the {kind} tokenizer's {name!r} must be a {expected.__name__}, got {describe(d[name])}"
            )


@contextlib.contextmanager
def as_checkpoint_error(kind: str):
    """Report a constructor's ValueError/TypeError on stored data as a CheckpointError."""
    try:
        yield
    except CheckpointError:
        raise
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"the stored {kind} tokenizer is invalid: {e}") from e
