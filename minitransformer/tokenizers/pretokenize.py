"""What byte-level BPE does to text before any merge: cut it into chunks, and turn each chunk into bytes.

    text ──regex pre-split──> chunks ──UTF-8──> bytes (ids 0..255)

GPT-2's pattern cuts text into words, numbers, punctuation runs and whitespace, and merges never cross a chunk
boundary: " dog" and " dog!" share the token for " dog" instead of learning "dog!" and "dog." separately.
Notebook 05, section 3.
"""

from __future__ import annotations

import regex

from ..errors import describe

# GPT-2's pre-split pattern, one alternative per kind of chunk: English contractions, an optional space
# followed by letters, by digits or by other symbols, then runs of whitespace. `\s+(?!\S)` leaves the last
# space of a run to start the next word, so "a  b" splits as "a", " ", " b".
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def compile_pattern(pattern: str) -> regex.Pattern:
    """The pre-split pattern, compiled; a pattern that is not a valid regular expression raises ValueError."""
    try:
        return regex.compile(pattern)
    except (regex.error, TypeError) as e:
        raise ValueError(f"pattern {describe(pattern)} is not a valid regular expression: {e}") from None


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
