"""BPETokenizer: byte-level byte-pair encoding in the style of GPT-2.

Its ids start as the 256 byte values, so any string can be encoded and no character is ever unknown. Training
then repeats one step: find the most frequent adjacent pair of ids and give it a new id (a "merge"). Frequent
words end up as single tokens, so sequences get shorter. Encoding applies the learned merges in the order they
were learned.

    text ──split out special tokens──> pieces ──regex pre-split──> chunks ──UTF-8──> bytes ──merges──> ids

Notebook 06, sections 3 to 7: the merge loop written by hand there must learn the same merges as `train`.
GPT-2's own vocabulary files load with `BPETokenizer.from_gpt2` (gpt2_files.py): same algorithm, other ids.

Limits, so that a hostile file cannot exhaust memory or time on load: at most MAX_MERGES merges, and at
most MAX_VOCAB_BYTES bytes in all the tokens together (chained merges make long tokens cheaply: n merges can
ask for n²/2 bytes). The `pattern` of a loaded file must be one of pretokenize.ALLOWED_PATTERNS.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence

from ..checks import is_int
from ..errors import CheckpointError, UnknownTokenError, describe
from .base import Tokenizer, as_checkpoint_error, check_dict, require_text
from .gpt2_files import ENDOFTEXT, read_gpt2_files
from .merging import Pair, PairCounts, merge, merge_by_rank
from .pretokenize import ALLOWED_PATTERNS, GPT2_SPLIT_PATTERN, compile_pattern, split_chunks, utf8

MAX_MERGES = 1_000_000  # 5x GPT-4o's 200k
MAX_VOCAB_BYTES = 64 * 2**20  # all the tokens' bytes together; GPT-4o's vocabulary holds about 2 MB
_CHUNK_CACHE_SIZE = 100_000  # chunks remembered by BPETokenizer.encode; the cache is emptied when full
_LONG_CHUNK = 16  # bytes, most words; longer chunks take merge_by_rank, O(n log n), not the O(n²) loop


class BPETokenizer(Tokenizer):
    """Byte-level BPE in the style of GPT-2: text -> regex pre-split into chunks -> UTF-8 bytes -> learned merges.

    Ids: 0..255 are the bytes, then one id per merge (merge k makes id 256 + k), then the special tokens.
    `merges` is a list of id pairs in the order they were learned, or a dict {(a, b): new_id}.
    `token_ids` renumbers the tokens: the token numbered i above gets the id token_ids[i] (GPT-2's files
    number the bytes in another order; see `from_gpt2`). The merges always speak of the numbers above.
    """

    kind = "bpe"

    def __init__(
        self,
        merges: Sequence[Pair] | dict = (),
        special_tokens: Sequence[str] = (),
        pattern: str = GPT2_SPLIT_PATTERN,
        token_ids: Sequence[int] | None = None,
    ):
        self._ranks = _merge_ranks(merges)  # pair -> when it was learned (0 = first)
        self.merges = tuple(self._ranks)
        _check_vocabulary_bytes(self.merges)
        self._tokens_bytes = [bytes([b]) for b in range(256)]  # id -> the bytes it stands for
        for a, b in self.merges:
            self._tokens_bytes.append(self._tokens_bytes[a] + self._tokens_bytes[b])
        self._setup_special_tokens(special_tokens, first_id=len(self._tokens_bytes))
        self._tokens_bytes += [t.encode("utf-8", errors="surrogatepass") for t in self.special_tokens]
        self._pattern = compile_pattern(pattern)
        self.pattern = pattern
        self._public_ids = None if token_ids is None else self._renumber(token_ids)
        # Printable strings, for display only: a token may hold part of a multi-byte character ("\ufffd").
        self._tokens = [
            self._id_to_special.get(i) or b.decode("utf-8", errors="replace")
            for i, b in enumerate(self._tokens_bytes)
        ]
        self._bytes_to_id: dict[bytes, int] = {}
        for i, b in enumerate(self._tokens_bytes):
            if i not in self._id_to_special:
                self._bytes_to_id.setdefault(b, i)
        self._cache: dict[str, tuple[int, ...]] = {}  # chunk -> ids; text repeats the same words a lot

    def _renumber(self, token_ids: Sequence[int]) -> tuple[int, ...]:
        """Give the token numbered i the id token_ids[i] in every table but the merges, which `_renumbered`
        translates; returns the table."""
        new_id = _check_token_ids(token_ids, len(self._tokens_bytes), len(self.special_tokens))
        old_id = sorted(range(len(new_id)), key=new_id.__getitem__)  # new id -> number in the merges
        self._tokens_bytes = [self._tokens_bytes[i] for i in old_id]
        self._special_to_id = {tok: new_id[i] for tok, i in self._special_to_id.items()}
        self._id_to_special = {i: tok for tok, i in self._special_to_id.items()}
        return new_id

    @classmethod
    def from_gpt2(cls, path, merges_file=None) -> BPETokenizer:
        """GPT-2's tokenizer from its own files, with GPT-2's ids: from_gpt2(vocab.json, merges.txt) (or
        OpenAI's encoder.json, vocab.bpe), from_gpt2(tokenizer.json), or from_gpt2(a folder holding them).
        See gpt2_files.py."""
        merges, special_tokens, token_ids = read_gpt2_files(path, merges_file)
        with as_checkpoint_error(f"GPT-2 ({str(path)!r})"):
            return cls(merges, special_tokens, GPT2_SPLIT_PATTERN, token_ids)

    # GPT-2 ends a text (and starts the next) with <|endoftext|>, where this package writes [EOS] and [BOS].
    bos_token_id = property(lambda tok: tok._special_to_id.get("[BOS]", tok._special_to_id.get(ENDOFTEXT)))
    eos_token_id = property(lambda tok: tok._special_to_id.get("[EOS]", tok._special_to_id.get(ENDOFTEXT)))

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
        merge touches (`PairCounts`), so training on a megabyte takes seconds rather than re-counting all
        pairs per merge.
        """
        require_text(text)
        tok = cls(special_tokens=special_tokens, pattern=pattern)  # validates the arguments
        n_merges = tok._merges_to_learn(vocab_size)
        # 1. Count the chunks, then the adjacent pairs in them, weighted by how often their chunk occurs.
        pairs = PairCounts(tok._count_chunks(text))
        # 2. Merge the most frequent pair, n_merges times.
        merges, token_bytes = [], [bytes([b]) for b in range(256)]  # token_bytes only for `verbose`
        for new_id in range(256, 256 + n_merges):
            if not pairs:
                warnings.warn(
                    f"the text ran out of pairs after {len(merges)} merges; vocab_size will be "
                    f"{256 + len(merges) + len(tok.special_tokens)}, not {vocab_size}",
                    stacklevel=2,
                )
                break
            best = pairs.most_frequent()
            if verbose:
                token_bytes.append(token_bytes[best[0]] + token_bytes[best[1]])
                print(
                    f"merge {len(merges) + 1}/{n_merges}: {best} -> {new_id} "
                    f"{token_bytes[-1]!r} ({pairs.counts[best]} times)"
                )
            pairs.merge(best, new_id)
            merges.append(best)
        return cls(merges, special_tokens, pattern)

    def _merges_to_learn(self, vocab_size: int) -> int:
        """How many merges make a vocabulary of vocab_size: the rest are bytes and special tokens."""
        n_merges = vocab_size - 256 - len(self.special_tokens) if isinstance(vocab_size, int) else -1
        if n_merges < 0:
            raise ValueError(
                f"vocab_size must be an int >= 256 + {len(self.special_tokens)} (the 256 byte tokens "
                f"plus the special tokens), got {describe(vocab_size)}"
            )
        return n_merges

    def _count_chunks(self, text: str) -> Counter[bytes]:
        """How often each chunk of `text` occurs, as UTF-8 bytes.

        Special tokens are cut out first, so that no merge crosses them.
        """
        chunks: Counter[str] = Counter()
        for piece, start, special_id in self._split_specials(text):
            if special_id is None:
                chunks.update(split_chunks(self._pattern, piece, start))
        return Counter({utf8(chunk): n for chunk, n in chunks.items()})

    def _encode_ordinary(self, piece: str, start: int) -> list[int]:
        utf8(piece, start)  # fails early, naming the position, on a character that has no UTF-8 bytes
        ids: list[int] = []
        for chunk in split_chunks(self._pattern, piece, start):
            chunk_ids = self._cache.get(chunk)
            ids.extend(chunk_ids if chunk_ids is not None else self._encode_new_chunk(chunk))
        return ids

    def _encode_new_chunk(self, chunk: str) -> tuple[int, ...]:
        """The ids of a chunk not in the cache: the readable loop for a word, the fast path for a long run."""
        data = chunk.encode("utf-8")
        if len(data) > _LONG_CHUNK:  # e.g. a megabyte of letters without a space: minutes for the loop below
            return self._renumbered(merge_by_rank(list(data), self._ranks))
        if len(self._cache) >= _CHUNK_CACHE_SIZE:
            self._cache.clear()
        self._cache[chunk] = self._renumbered(self._encode_chunk(data))
        return self._cache[chunk]

    def _renumbered(self, ids: Sequence[int]) -> tuple[int, ...]:
        """Merged ids -> this tokenizer's ids: the same, unless it was built with `token_ids`."""
        return tuple(ids) if self._public_ids is None else tuple(self._public_ids[i] for i in ids)

    def _encode_chunk(self, data: bytes) -> tuple[int, ...]:
        """Apply the merges to one chunk's bytes, earliest-learned pair first, as training did."""
        ids = list(data)
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: self._ranks.get(p, len(self._ranks)))
            if pair not in self._ranks:
                break  # no pair left that was ever merged
            ids = merge(ids, pair, 256 + self._ranks[pair])
        return tuple(ids)

    def _ids_to_text(self, ids: list[int]) -> str:
        data = b"".join(self._tokens_bytes[i] for i in ids)  # a special token's bytes are its UTF-8
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

    def _vocabulary_dict(self) -> dict:
        renumbered = {} if self._public_ids is None else {"token_ids": list(self._public_ids)}
        return {"pattern": self.pattern, "merges": [list(pair) for pair in self.merges], **renumbered}

    @classmethod
    def from_dict(cls, d: dict) -> BPETokenizer:
        check_dict(d, cls.kind, {"merges": list, "special_tokens": list, "pattern": str})
        if d["pattern"] not in ALLOWED_PATTERNS.values():  # a regex from a file is code: it may run for hours
            allowed = ", ".join(f"{name} = {p!r}" for name, p in ALLOWED_PATTERNS.items())
            raise CheckpointError(
                f"the bpe tokenizer's 'pattern' must be one of the patterns minitransformer writes "
                f"({allowed}), got {describe(d['pattern'])}; for a pattern you trust, build the tokenizer "
                "in code: BPETokenizer(d['merges'], d['special_tokens'], pattern=...)"
            )
        token_ids = d.get("token_ids")  # only in the files of a renumbered tokenizer, such as GPT-2's
        if token_ids is not None and not isinstance(token_ids, list):
            raise CheckpointError(f"the bpe tokenizer's token_ids must be a list, got {describe(token_ids)}")
        with as_checkpoint_error(cls.kind):
            return cls(
                [tuple(m) if isinstance(m, list) else m for m in d["merges"]],
                d["special_tokens"],
                d["pattern"],
                token_ids,
            )

    def __repr__(self) -> str:
        return (
            f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, "
            f"special_tokens={list(self.special_tokens)})"
        )


def _merge_ranks(merges: Sequence[Pair] | dict) -> dict[Pair, int]:
    """Check `merges` and number them in the order they were learned: {pair: rank}; rank k creates id 256 + k."""
    if isinstance(merges, dict):  # {(a, b): new_id} -> pairs sorted by the id they create
        ids = sorted(merges.values())
        if ids != list(range(256, 256 + len(merges))):
            raise ValueError(
                f"merges as a dict must create the ids 256, 257, ... in order, got {describe(ids)}"
            )
        merges = sorted(merges, key=merges.get)
    if len(merges) > MAX_MERGES:
        raise ValueError(f"merges holds {len(merges):,} merges, more than MAX_MERGES = {MAX_MERGES:,}")
    ranks: dict[Pair, int] = {}
    for rank, pair in enumerate(merges):
        new_id = 256 + rank
        if (
            not isinstance(pair, (tuple, list))
            or len(pair) != 2
            or not all(is_int(i) and 0 <= i < new_id for i in pair)
        ):
            raise ValueError(
                f"merges[{rank}] must be a pair of existing ids, each in 0..{new_id - 1} "
                f"(it creates id {new_id}), got {describe(pair)}"
            )
        pair = (pair[0], pair[1])
        if pair in ranks:
            raise ValueError(f"merges[{rank}] = {pair} repeats merges[{ranks[pair]}]")
        ranks[pair] = rank
    return ranks


def _check_vocabulary_bytes(merges: Sequence[Pair]) -> None:
    """Refuse merges whose tokens would hold over MAX_VOCAB_BYTES bytes in all, before building any token.

    A token's length is the sum of its two parts' lengths, so the lengths cost one int each. Chained merges
    ask for a lot: (97, 256), (97, 257), ... make tokens of 3, 4, 5, ... bytes, and (256, 256), (257, 257),
    ... double the length at each merge.
    """
    lengths, total = [1] * 256, 256
    for rank, (a, b) in enumerate(merges):
        lengths.append(lengths[a] + lengths[b])
        total += lengths[-1]
        if total > MAX_VOCAB_BYTES:  # stop here: the lengths of later merges could grow without bound
            raise ValueError(
                f"the tokens would hold more than MAX_VOCAB_BYTES = {MAX_VOCAB_BYTES:,} bytes in all; "
                f"merges[{rank}] = {(a, b)} makes a token of {lengths[-1]:,} bytes and the total "
                f"{total:,} (a real vocabulary holds a few MB)"
            )


def _check_token_ids(token_ids: Sequence[int], n_tokens: int, n_special: int) -> tuple[int, ...]:
    """token_ids as a tuple, checked to give the n_tokens tokens the ids 0 .. n_tokens - 1, each once."""
    ids = tuple(token_ids) if isinstance(token_ids, Sequence) and not isinstance(token_ids, str) else None
    if ids is None or not all(map(is_int, ids)) or sorted(ids) != list(range(n_tokens)):
        raise ValueError(
            f"token_ids must give the {n_tokens} tokens (256 bytes, {n_tokens - 256 - n_special} merges, "
            f"{n_special} special tokens) the ids 0..{n_tokens - 1}, each once, got {describe(token_ids)}"
        )
    return tuple(map(int, ids))
