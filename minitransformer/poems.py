"""Tang poems: the bundled Chinese corpus, its split, its character tokenizer and the four regular forms.

37,046 regular Tang poems ship inside the package (assets/tang_poems.jsonl.gz, MIT-licensed
collection of public-domain poems; see assets/README.md). A regular poem has a strict shape, which
is what makes it a good lesson in constrained decoding (generation/poetry.py):

    form      characters a line   lines    e.g.
    五言绝句          5              4      床前明月光，疑是地上霜。举头望明月，低头思故乡。
    七言绝句          7              4
    五言律诗          5              8
    七言律诗          7              8

Each line is followed by one punctuation mark: ，after odd lines, 。(or ？！) after even ones.
For training, poems are joined into one text with a newline after each, so "\n" both ends a poem
and announces the next one: a model prompted with "\n" starts a new poem. Notebook 14.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from importlib import resources

from .checks import require_int
from .data import train_val_split
from .tokenizers import CharTokenizer

# form -> (characters per line, number of lines)
FORMS = {"五言绝句": (5, 4), "七言绝句": (7, 4), "五言律诗": (5, 8), "七言律诗": (7, 8)}
PUNCTUATION = "，。？！；"
LINE_END = {"odd": "，；？！", "even": "。？！"}  # what may follow the 1st, 3rd, ... and the 2nd, 4th, ... line
POEM_END = "\n"
UNK = "[UNK]"
VAL_FRACTION = 0.05  # the last 5% of the poems, in file order, are the validation split


def load_poems() -> list[dict]:
    """Every bundled poem as {"title", "author", "form", "text"}, in file order."""
    path = resources.files("minitransformer") / "assets" / "tang_poems.jsonl.gz"
    with gzip.open(path.open("rb"), "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def poem_splits(poems: list[dict] | None = None) -> tuple[list[dict], list[dict]]:
    """(train, validation): validation is the last 5% of the poems in file order (1,853 of 37,046)."""
    return train_val_split(load_poems() if poems is None else poems, VAL_FRACTION)


def poems_text(poems: list[dict]) -> str:
    """The poems as one training text: each poem followed by a newline."""
    return "".join(p["text"] + POEM_END for p in poems)


def poem_tokenizer(train_poems: list[dict] | None = None, min_count: int = 2) -> CharTokenizer:
    """A character tokenizer over the characters seen at least `min_count` times in the training poems.

    Rarer characters encode to "[UNK]" (id 0): a character seen once cannot be learned, and keeping
    it would only grow the embedding table. With min_count=2 that is 5,459 characters plus "\\n" and
    the punctuation, covering 99.5% of the validation text (see `coverage`).
    """
    require_int("min_count", min_count, minimum=1, error=ValueError)
    train_poems = poem_splits()[0] if train_poems is None else train_poems
    counts = Counter(poems_text(train_poems))
    chars = sorted(c for c, n in counts.items() if n >= min_count or c in PUNCTUATION + POEM_END)
    return CharTokenizer(chars, special_tokens=(UNK,))


def coverage(tokenizer: CharTokenizer, text: str) -> float:
    """Share of the characters of `text` that have their own id (not "[UNK]")."""
    vocabulary = set(tokenizer.chars)
    known = sum(1 for c in text if c in vocabulary)
    return known / max(len(text), 1)


def poem_lines(text: str) -> list[str]:
    """The lines of a poem without their punctuation: "床前明月光，疑是地上霜。" -> ["床前明月光", "疑是地上霜"]."""
    lines, line = [], ""
    for ch in text:
        if ch in PUNCTUATION:
            lines.append(line)
            line = ""
        else:
            line += ch
    return lines + ([line] if line else [])


def has_form(text: str, form: str) -> bool:
    """Whether `text` is exactly a poem of `form`: its line lengths, its line count and its punctuation."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
    width, n_lines = FORMS[form]
    text = text.strip(POEM_END)
    if len(text) != (width + 1) * n_lines:
        return False
    for i in range(n_lines):
        line = text[i * (width + 1) : (i + 1) * (width + 1)]
        allowed_end = LINE_END["odd" if i % 2 == 0 else "even"]
        if line[-1] not in allowed_end or any(c in PUNCTUATION + POEM_END for c in line[:-1]):
            return False
    return True
