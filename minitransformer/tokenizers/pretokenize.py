"""What byte-level BPE does to text before any merge: cut it into chunks, and turn each chunk into bytes.

    text ──regex pre-split──> chunks ──UTF-8──> bytes (ids 0..255)

GPT-2's pattern cuts text into words, numbers, punctuation runs and whitespace, and merges never cross a chunk
boundary: " dog" and " dog!" share the token for " dog" instead of learning "dog!" and "dog." separately.
Notebook 06, section 3.

A tokenizer file names its pattern, but a regular expression from a file is code: `(a|aa)+$` backtracks for
minutes on 41 characters. So a loaded file may only carry one of `ALLOWED_PATTERNS`, the patterns this package
writes; a tokenizer built in code (`BPETokenizer(..., pattern=...)`) may use any pattern.
"""

from __future__ import annotations

import regex

from ..errors import describe

# GPT-2's pre-split pattern, one alternative per kind of chunk: English contractions, an optional space
# followed by letters, by digits or by other symbols, then runs of whitespace. `\s+(?!\S)` leaves the last
# space of a run to start the next word, so "a  b" splits as "a", " ", " b".
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# No pre-split: the whole text is one chunk, so merges may cross words (notebook 06, exercise 4).
ONE_CHUNK_PATTERN = r"[\s\S]+"
# The patterns a tokenizer file may carry: each matches in linear time and covers any text.
ALLOWED_PATTERNS = {"GPT2_SPLIT_PATTERN": GPT2_SPLIT_PATTERN, "ONE_CHUNK_PATTERN": ONE_CHUNK_PATTERN}


def compile_pattern(pattern: str) -> regex.Pattern:
    """The pre-split pattern, compiled; a pattern that is not a valid regular expression raises ValueError."""
    try:
        return regex.compile(pattern)
    except (regex.error, TypeError) as e:
        raise ValueError(f"pattern {describe(pattern)} is not a valid regular expression: {e}") from None


def split_chunks(pattern: regex.Pattern, text: str, start: int = 0) -> list[str]:
    """The chunks `pattern` cuts `text` into; they must tile it, or characters would vanish from the encoding.

    `start` (where `text` starts in the caller's string) is for the error message.
    """
    # findall is the fast way, but with a group in the pattern it returns the groups, not the matches.
    chunks = pattern.findall(text) if not pattern.groups else [m.group() for m in pattern.finditer(text)]
    # Matches never overlap and come in order, so they tile the text exactly when their lengths add up.
    if sum(map(len, chunks)) != len(text):
        gap, end = _first_gap(pattern, text)
        raise ValueError(
            f"the pre-split pattern {describe(pattern.pattern)} skips {describe(text[gap:end])} at "
            f"position {start + gap}; its chunks must cover the text, e.g. end it with '|[\\s\\S]'"
        )
    return chunks


def _first_gap(pattern: regex.Pattern, text: str) -> tuple[int, int]:
    """Where the first stretch of `text` that no match of `pattern` covers starts and ends."""
    end = 0
    for m in pattern.finditer(text):
        if m.start() != end:
            return end, m.start()
        end = m.end()
    return end, len(text)


def utf8(text: str, position: int | None = None) -> bytes:
    """`text` as UTF-8; `position` (where `text` starts in the caller's string) is for the error message."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:  # only an unpaired surrogate such as "\ud800" has no UTF-8 bytes
        where = "" if position is None else f" at position {position + e.start}"
        raise ValueError(
            f"text contains {text[e.start]!r}{where}, an unpaired surrogate that has no UTF-8 "
            "encoding; byte-level BPE cannot represent it"
        ) from None
