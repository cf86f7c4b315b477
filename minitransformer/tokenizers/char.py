"""CharTokenizer: one id per character.

The vocabulary is the characters of a training text, so it is tiny (65 for Tiny Shakespeare) and every id is easy
to read, but sequences are as long as the text, and a character the text never held has no id (unless the
tokenizer has an "[UNK]" token to fall back on). Notebook 06, section 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ..errors import UnknownTokenError, describe
from .base import Tokenizer, as_checkpoint_error, check_dict, require_text


class CharTokenizer(Tokenizer):
    """One token per character. Ids: special tokens first (0..k-1, in the order given), then `chars`."""

    kind = "char"

    def __init__(self, chars: Sequence[str], special_tokens: Sequence[str] = ()):
        chars = _checked_chars(chars)
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
        require_text(text)
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

    def _vocabulary_dict(self) -> dict:
        return {"chars": list(self.chars)}

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        check_dict(d, cls.kind, {"chars": list, "special_tokens": list})
        with as_checkpoint_error(cls.kind):
            return cls(d["chars"], d["special_tokens"])


def _checked_chars(chars: Sequence[str]) -> list[str]:
    """chars as a list of distinct single characters."""
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
    return chars
