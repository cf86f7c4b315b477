"""Tokenizers: how text becomes the integer ids a Transformer reads, and how ids become text again.

Used by notebook 05 (tokenizers), and by the data and generation code. Two tokenizers share one interface:

* `CharTokenizer`: one id per character. The vocabulary is the characters of a training text, so it is
  tiny (65 for Tiny Shakespeare) and every id is easy to read, but sequences are as long as the text.
* `BPETokenizer`: byte-level byte-pair encoding in the style of GPT-2. Its ids start as the 256 byte
  values, so any string can be encoded and no character is ever unknown. Training then repeats one step:
  find the most frequent adjacent pair of ids and give it a new id (a "merge"). Frequent words end up as
  single tokens, so sequences get shorter.

    text ──split out special tokens──> pieces ──regex pre-split──> chunks ──UTF-8──> bytes ──merges──> ids

The regex pre-split (GPT-2's pattern) cuts text into words, numbers, punctuation runs and whitespace, and
merges never cross a chunk boundary: " dog" and " dog!" share the token for " dog" instead of learning
"dog!" and "dog." separately. Encoding applies the learned merges in the order they were learned.

Special tokens such as "[MASK]" are whole strings with their own ids. Written literally in a text they encode
to that id; they are never split into characters or bytes.
"""

from __future__ import annotations

import contextlib
import json
import operator
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import regex
import torch

from minitransformer.errors import CheckpointError, ShapeError, UnknownTokenError, describe

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[BOS]", "[EOS]", "[MASK]")

# GPT-2's pre-split pattern, one alternative per kind of chunk: English contractions, an optional space
# followed by letters, by digits or by other symbols, then runs of whitespace. `\s+(?!\S)` leaves the last
# space of a run to start the next word, so "a  b" splits as "a", " ", " b".
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

_FORMAT_VERSION = 1  # stored in to_dict() so a future format change can be detected on load
_CHUNK_CACHE_SIZE = 100_000  # chunks remembered by BPETokenizer.encode; the cache is emptied when full


class _Tokenizer:
    """What both tokenizers share: special tokens, id checks, decoding, and JSON files."""

    kind = ""  # "char" or "bpe": the "type" written by to_dict()

    def _setup_special_tokens(self, special_tokens: Sequence[str], first_id: int) -> None:
        if isinstance(special_tokens, str):
            raise TypeError(
                f"special_tokens must be a sequence of strings, got the string {special_tokens!r}; "
                f"write special_tokens=({special_tokens!r},)"
            )
        tokens = list(special_tokens)
        for tok in tokens:
            if not isinstance(tok, str) or not tok:
                raise ValueError(
                    f"special_tokens must be non-empty strings, got {describe(tok)} "
                    f"(the package knows {list(SPECIAL_TOKENS)})"
                )
        repeated = sorted(tok for tok, n in Counter(tokens).items() if n > 1)
        if repeated:
            raise ValueError(f"special_tokens contains {repeated} more than once; each needs a single id")
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
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {describe(text)}; encode one string at a time")
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
            if ids.dim() != 1:
                raise ShapeError(
                    f"ids must be a 1-D tensor (T,), got shape {tuple(ids.shape)}; decode one "
                    "sequence at a time, e.g. decode(batch[0])"
                )
            if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
                raise TypeError(f"ids must be an integer tensor, got dtype {ids.dtype}; use ids.long()")
            ids = ids.tolist()
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

    @property
    def pad_token_id(self) -> int | None:
        return self._special_to_id.get("[PAD]")

    @property
    def unk_token_id(self) -> int | None:
        return self._special_to_id.get("[UNK]")

    @property
    def bos_token_id(self) -> int | None:
        return self._special_to_id.get("[BOS]")

    @property
    def eos_token_id(self) -> int | None:
        return self._special_to_id.get("[EOS]")

    @property
    def mask_token_id(self) -> int | None:
        return self._special_to_id.get("[MASK]")

    @property
    def special_token_ids(self) -> frozenset[int]:
        return frozenset(self._id_to_special)

    def id_to_token(self, i: int) -> str:
        """The printable string of token `i` (a special token's name, a character, or a byte sequence)."""
        return self._tokens[self._check_ids([i])[0]]

    def convert_ids_to_tokens(self, ids) -> list[str]:
        return [self._tokens[i] for i in self._check_ids(ids)]

    def save(self, path) -> None:
        """Write the tokenizer to a JSON file (UTF-8); read it back with `load` or `load_tokenizer`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # ensure_ascii keeps the file valid UTF-8 even if the vocabulary holds unpaired surrogates.
        path.write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=True), encoding="utf-8")

    @classmethod
    def load(cls, path):
        """Read a tokenizer written by `save`; a missing, garbled or wrong-type file raises CheckpointError."""
        data = _read_json(path)
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


class CharTokenizer(_Tokenizer):
    """One token per character. Ids: special tokens first (0..k-1, in the order given), then `chars`."""

    kind = "char"

    def __init__(self, chars: Sequence[str], special_tokens: Sequence[str] = ()):
        chars = list(chars)
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(
                f"chars must be single characters, got {describe(bad)}; multi-character "
                "tokens belong in special_tokens"
            )
        repeated = sorted(c for c, n in Counter(chars).items() if n > 1)
        if repeated:
            raise ValueError(f"chars contains {repeated} more than once; each character needs a single id")
        self._setup_special_tokens(special_tokens, first_id=0)
        clash = sorted(set(chars) & set(self.special_tokens))
        if clash:
            raise ValueError(f"{clash} appear in both chars and special_tokens; a token needs a single id")
        if not chars and not self.special_tokens:
            raise ValueError("the vocabulary is empty: pass at least one character or special token")
        self.chars = tuple(chars)
        self._tokens = list(self.special_tokens) + chars  # id -> token
        self._char_to_id = {c: len(self.special_tokens) + i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str, special_tokens: Sequence[str] = ()) -> CharTokenizer:
        """Use every distinct character of `text`, sorted, as the vocabulary."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {describe(text)}")
        return cls(sorted(set(text)), special_tokens)

    def _encode_ordinary(self, piece: str, start: int) -> list[int]:
        ids = []
        for offset, ch in enumerate(piece):
            i = self._char_to_id.get(ch, self.unk_token_id)
            if i is None:
                raise UnknownTokenError(
                    f"character {ch!r} at position {start + offset} is not in the vocabulary of "
                    f"{self.vocab_size} tokens; build the tokenizer from text that contains it, or add an "
                    "unknown-token fallback with special_tokens=('[UNK]',)"
                )
            ids.append(i)
        return ids

    def _ids_to_text(self, ids: list[int]) -> str:
        return "".join(self._tokens[i] for i in ids)

    def token_to_id(self, token: str) -> int:
        """The id of a character or special token; UnknownTokenError if there is none."""
        i = self._special_to_id.get(token, self._char_to_id.get(token))
        if i is None:
            raise UnknownTokenError(f"token {token!r} is not in the vocabulary of {self.vocab_size} tokens")
        return i

    def to_dict(self) -> dict:
        return {
            "type": self.kind,
            "version": _FORMAT_VERSION,
            "chars": list(self.chars),
            "special_tokens": list(self.special_tokens),
        }

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        _check_dict(d, cls.kind, {"chars": list, "special_tokens": list})
        with _as_checkpoint_error(cls.kind):
            return cls(d["chars"], d["special_tokens"])


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace each occurrence of `pair` in `ids`, left to right, by `new_id`.

    _merge([1, 2, 3, 1, 2], (1, 2), 256) -> [256, 3, 256];  _merge([5, 5, 5], (5, 5), 256) -> [256, 5]
    """
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _utf8(text: str, position: int | None = None) -> bytes:
    """`text` as UTF-8; `position` (where `text` starts in the caller's string) is for the error message."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:  # only an unpaired surrogate such as "\ud800" has no UTF-8 bytes
        where = "" if position is None else f" at position {position + e.start}"
        raise ValueError(
            f"text contains {text[e.start]!r}{where}, an unpaired surrogate that has no UTF-8 "
            "encoding; byte-level BPE cannot represent it"
        ) from None


class BPETokenizer(_Tokenizer):
    """Byte-level BPE in the style of GPT-2: text -> regex pre-split into chunks -> UTF-8 bytes -> learned merges.

    Ids: 0..255 are the bytes, then one id per merge (merge k makes id 256 + k), then the special tokens.
    `merges` is a list of id pairs in the order they were learned, or a dict {(a, b): new_id}.
    """

    kind = "bpe"

    def __init__(
        self,
        merges: Sequence[tuple[int, int]] | dict = (),
        special_tokens: Sequence[str] = (),
        pattern: str = GPT2_SPLIT_PATTERN,
    ):
        if isinstance(merges, dict):  # {(a, b): new_id} -> pairs sorted by the id they create
            ids = sorted(merges.values())
            if ids != list(range(256, 256 + len(merges))):
                raise ValueError(
                    f"merges as a dict must create the ids 256, 257, ... in order, got {describe(ids)}"
                )
            merges = sorted(merges, key=merges.get)
        self._tokens_bytes = [bytes([b]) for b in range(256)]  # id -> the bytes it stands for
        self._ranks: dict[tuple[int, int], int] = {}  # pair -> when it was learned (0 = first)
        for rank, pair in enumerate(merges):
            new_id = 256 + rank
            if (
                not isinstance(pair, (tuple, list))
                or len(pair) != 2
                or not all(isinstance(i, int) and 0 <= i < new_id for i in pair)
            ):
                raise ValueError(
                    f"merges[{rank}] must be a pair of existing ids, each in 0..{new_id - 1} "
                    f"(it creates id {new_id}), got {describe(pair)}"
                )
            pair = (pair[0], pair[1])
            if pair in self._ranks:
                raise ValueError(f"merges[{rank}] = {pair} repeats merges[{self._ranks[pair]}]")
            self._ranks[pair] = rank
            self._tokens_bytes.append(self._tokens_bytes[pair[0]] + self._tokens_bytes[pair[1]])
        self.merges = tuple(self._ranks)
        self._setup_special_tokens(special_tokens, first_id=len(self._tokens_bytes))
        try:
            self._pattern = regex.compile(pattern)
        except (regex.error, TypeError) as e:
            raise ValueError(f"pattern {describe(pattern)} is not a valid regular expression: {e}") from None
        self.pattern = pattern
        # Printable strings, for display only: a token may hold part of a multi-byte character ("\ufffd").
        self._tokens = [b.decode("utf-8", errors="replace") for b in self._tokens_bytes]
        self._tokens += list(self.special_tokens)
        self._bytes_to_id: dict[bytes, int] = {}
        for i, b in enumerate(self._tokens_bytes):
            self._bytes_to_id.setdefault(b, i)
        self._cache: dict[str, tuple[int, ...]] = {}  # chunk -> ids; text repeats the same words a lot

    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int,
        special_tokens: Sequence[str] = (),
        verbose: bool = False,
        pattern: str = GPT2_SPLIT_PATTERN,
    ) -> BPETokenizer:
        """Learn vocab_size - 256 - len(special_tokens) merges from `text`.

        Each distinct chunk is stored once with its count, and pair counts are updated only for the chunks a
        merge touches, so training on a megabyte takes seconds rather than re-counting all pairs per merge.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {describe(text)}")
        tok = cls(special_tokens=special_tokens, pattern=pattern)  # validates the arguments
        n_merges = vocab_size - 256 - len(tok.special_tokens) if isinstance(vocab_size, int) else -1
        if n_merges < 0:
            raise ValueError(
                f"vocab_size must be an int >= 256 + {len(tok.special_tokens)} (the 256 byte tokens "
                f"plus the special tokens), got {describe(vocab_size)}"
            )
        # 1. Count the chunks; special tokens are cut out first so that no merge crosses them.
        chunk_counts: Counter[str] = Counter()
        for piece, _, special_id in tok._split_specials(text):
            if special_id is None:
                chunk_counts.update(tok._pattern.findall(piece))
        words = [list(_utf8(chunk)) for chunk in chunk_counts]  # each distinct chunk as byte ids
        freqs = list(chunk_counts.values())
        # 2. Count adjacent pairs, weighted by how often their chunk occurs, and remember where they occur.
        pair_counts: Counter[tuple[int, int]] = Counter()
        where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
        for w, word in enumerate(words):
            for pair in zip(word, word[1:]):
                pair_counts[pair] += freqs[w]
                where[pair].add(w)
        # 3. Merge the most frequent pair, n_merges times.
        merges, token_bytes = [], [bytes([b]) for b in range(256)]  # token_bytes only for `verbose`
        for new_id in range(256, 256 + n_merges):
            if not pair_counts:
                warnings.warn(
                    f"the text ran out of pairs after {len(merges)} merges; vocab_size will be "
                    f"{256 + len(merges) + len(tok.special_tokens)}, not {vocab_size}",
                    stacklevel=2,
                )
                break
            # Ties go to the smallest pair, so the result does not depend on dict order.
            best = max(pair_counts, key=lambda p: (pair_counts[p], -p[0], -p[1]))
            if verbose:
                print(
                    f"merge {len(merges) + 1}/{n_merges}: {best} -> {new_id} "
                    f"{token_bytes[best[0]] + token_bytes[best[1]]!r} ({pair_counts[best]} times)"
                )
            for w in where.pop(best):
                word, merged = words[w], _merge(words[w], best, new_id)
                if len(merged) == len(word):
                    continue  # a stale entry: an earlier merge already removed `best` from this chunk
                # Swap the chunk's old pairs for its new ones in the counts.
                for pair in zip(word, word[1:]):
                    pair_counts[pair] -= freqs[w]
                    if pair_counts[pair] == 0:
                        del pair_counts[pair]
                for pair in zip(merged, merged[1:]):
                    pair_counts[pair] += freqs[w]
                    where[pair].add(w)
                words[w] = merged
            merges.append(best)
            token_bytes.append(token_bytes[best[0]] + token_bytes[best[1]])
        return cls(merges, special_tokens, pattern)

    def _encode_ordinary(self, piece: str, start: int) -> list[int]:
        ids: list[int] = []
        for m in self._pattern.finditer(piece):
            chunk = m.group()
            if chunk not in self._cache:
                if len(self._cache) >= _CHUNK_CACHE_SIZE:
                    self._cache.clear()
                self._cache[chunk] = self._encode_chunk(_utf8(chunk, start + m.start()))
            ids.extend(self._cache[chunk])
        return ids

    def _encode_chunk(self, data: bytes) -> tuple[int, ...]:
        """Apply the merges to one chunk's bytes, earliest-learned pair first, as training did."""
        ids = list(data)
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: self._ranks.get(p, len(self._ranks)))
            if pair not in self._ranks:
                break  # no pair left that was ever merged
            ids = _merge(ids, pair, 256 + self._ranks[pair])
        return tuple(ids)

    def _ids_to_text(self, ids: list[int]) -> str:
        n_ordinary = len(self._tokens_bytes)
        data = b"".join(self._tokens_bytes[i] if i < n_ordinary else self._tokens[i].encode() for i in ids)
        # Ids from a model need not form valid UTF-8 (a character cut in half): show those bytes as "\ufffd".
        return data.decode("utf-8", errors="replace")

    def token_to_id(self, token: str) -> int:
        """The id of a special token, or of the token whose bytes are the UTF-8 of `token`."""
        i = self._special_to_id.get(token)
        if i is None and isinstance(token, str):
            i = self._bytes_to_id.get(token.encode("utf-8", errors="surrogatepass"))
        if i is None:
            raise UnknownTokenError(f"token {token!r} is not one of the {self.vocab_size} tokens")
        return i

    def to_dict(self) -> dict:
        return {
            "type": self.kind,
            "version": _FORMAT_VERSION,
            "pattern": self.pattern,
            "merges": [list(pair) for pair in self.merges],
            "special_tokens": list(self.special_tokens),
        }

    @classmethod
    def from_dict(cls, d: dict) -> BPETokenizer:
        _check_dict(d, cls.kind, {"merges": list, "special_tokens": list, "pattern": str})
        with _as_checkpoint_error(cls.kind):
            return cls(
                [tuple(m) if isinstance(m, list) else m for m in d["merges"]],
                d["special_tokens"],
                d["pattern"],
            )

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
            f"special_tokens={list(self.special_tokens)})"
        )


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
    return tokenizer_from_dict(_read_json(path))


def _read_json(path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"no tokenizer file at {str(path)!r}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(
            f"{str(path)!r} is not a tokenizer JSON file ({e}); write one with tokenizer.save(path)"
        ) from None
    except OSError as e:  # a directory, no permission, ...
        raise CheckpointError(f"cannot read tokenizer file {str(path)!r}: {e}") from None


def _check_dict(d, kind: str, fields: dict[str, type]) -> None:
    """Check the shape of to_dict() output before building from it."""
    if not isinstance(d, dict):
        raise CheckpointError(f"a {kind} tokenizer must be stored as a JSON object (dict), got {describe(d)}")
    if d.get("type") != kind:
        raise CheckpointError(f"expected a tokenizer with 'type': {kind!r}, got {describe(d.get('type'))}")
    if d.get("version", _FORMAT_VERSION) != _FORMAT_VERSION:
        raise CheckpointError(
            f"tokenizer format version {describe(d['version'])} is not supported; this "
            f"version of minitransformer reads version {_FORMAT_VERSION}"
        )
    for name, expected in fields.items():
        if name not in d:
            raise CheckpointError(f"the {kind} tokenizer dict has no {name!r} entry (it has {sorted(d)})")
        if not isinstance(d[name], expected):
            raise CheckpointError(
                f"the {kind} tokenizer's {name!r} must be a {expected.__name__}, got {describe(d[name])}"
            )


@contextlib.contextmanager
def _as_checkpoint_error(kind: str):
    """Report a constructor's ValueError/TypeError on stored data as a CheckpointError."""
    try:
        yield
    except CheckpointError:
        raise
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"the stored {kind} tokenizer is invalid: {e}") from e
