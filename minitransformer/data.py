"""Where the tokens come from: bundled corpora, toy seq2seq tasks, and batches.

A language model only ever sees integer tensors. This module turns text into them:

- `load_text` reads the two corpora that ship inside the package: Tiny Shakespeare (pretraining)
  and Python standard-library source (a different domain, for the fine-tuning lesson).
- `reversal_pairs`, `sorting_pairs` and `date_pairs` make small seq2seq tasks, deterministic
  from a seed, for the encoder-decoder model.
- `clm_batch`, `mlm_windows`, `pad_batch` and `seq2seq_batch` cut and pad those ids into the
  (B, T) LongTensors that the models and the losses in objectives.py expect.

Used by notebooks 07 (pretraining and fine-tuning a GPT), 08 (masked LM) and 09 (seq2seq).
"""

from __future__ import annotations

import datetime
import random
import string
from importlib import resources

import torch

from .checks import require_int
from .errors import ShapeError, describe
from .tokenizers import CharTokenizer

CORPORA = {"shakespeare": "tinyshakespeare.txt", "python": "python_stdlib.txt"}
IGNORE_INDEX = -100  # label value that F.cross_entropy skips (Hugging Face convention)


# ----------------------------------------------------------------------------- corpora


def load_text(name: str = "shakespeare") -> str:
    """The bundled corpus `name` as one string ("shakespeare": 1,115,394 chars; "python": ~377 KB)."""
    if name not in CORPORA:
        raise ValueError(f"load_text: unknown corpus name={name!r}; known names are {sorted(CORPORA)}")
    # importlib.resources finds the file inside the installed package, wherever it lives.
    return (resources.files("minitransformer") / "assets" / CORPORA[name]).read_text(encoding="utf-8")


def train_val_split(text, val_fraction: float = 0.1):
    """First (1 - val_fraction) of `text` for training, the rest for validation.

    A contiguous split (not a shuffle): validation text is a passage the model never saw, as in
    nanoGPT's `n = int(0.9 * len(data))`. Works on strings, lists and 1-D tensors alike.
    """
    if not (isinstance(val_fraction, (int, float)) and 0.0 < val_fraction < 1.0):
        raise ValueError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}")
    n = int((1.0 - val_fraction) * len(text))
    return text[:n], text[n:]


def ascii_tokenizer(special_tokens=()) -> CharTokenizer:
    """A CharTokenizer over "\\n" and the 95 printable ASCII chars (space .. ~).

    Both corpora are pure printable ASCII, so one vocabulary serves Shakespeare and Python:
    a model pretrained on one can be fine-tuned on the other without touching its embeddings.
    """
    return CharTokenizer("\n" + "".join(chr(c) for c in range(32, 127)), special_tokens=special_tokens)


# ----------------------------------------------------------------------------- seq2seq tasks

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
# Each style is a `datetime.strptime` format, so a test can parse every source back to its date.
# Day/month orders that could be misread ("05/03/2021") are left out on purpose: the month is
# always a word, so every source means exactly one date.
DATE_STYLES = {
    "month_day_year": "%B %d, %Y",  # March 5, 2021
    "mon_day_year": "%b %d, %Y",  # Mar 5, 2021
    "day_month_year": "%d %B %Y",  # 5 March 2021
    "day_mon_year": "%d %b %Y",  # 5 Mar 2021
    "weekday_month_day_year": "%A, %B %d, %Y",  # Friday, March 5, 2021
    "wkd_day_mon_year": "%a, %d %b %Y",  # Fri, 5 Mar 2021
    "year_month_day": "%Y %B %d",  # 2021 March 5
}
FIRST_DATE, LAST_DATE = datetime.date(1900, 1, 1), datetime.date(2099, 12, 31)
N_DAYS = (LAST_DATE - FIRST_DATE).days + 1  # 73,049 dates to draw from


def format_date(day: datetime.date, style: str, lowercase: bool = False) -> str:
    """`day` written in DATE_STYLES[style], e.g. format_date(date(2021, 3, 5), "day_mon_year") -> "5 Mar 2021".

    Written by hand instead of with strftime: strftime's month names follow the machine's
    locale, and its %d always pads ("05"), while people write "5".
    """
    if style not in DATE_STYLES:
        raise ValueError(f"format_date: unknown style={style!r}; known styles are {list(DATE_STYLES)}")
    month, weekday = MONTHS[day.month - 1], WEEKDAYS[day.weekday()]
    fields = {"%A": weekday, "%a": weekday[:3], "%B": month, "%b": month[:3], "%d": str(day.day)}
    text = DATE_STYLES[style].replace("%Y", str(day.year))
    for directive, value in fields.items():
        text = text.replace(directive, value)
    return text.lower() if lowercase else text


def _date_pair(rng: random.Random, day: datetime.date):
    style = rng.choice(list(DATE_STYLES))
    return format_date(day, style, lowercase=rng.random() < 0.25), day.isoformat()


def date_pairs(n: int, seed: int = 0):
    """n (human date, ISO date) pairs, e.g. ("Friday, March 5, 2021", "2021-03-05").

    Dates are uniform over 1900-01-01 .. 2099-12-31; styles are uniform over DATE_STYLES, and a
    quarter of the sources are lowercased ("5 mar 2021").
    """
    require_int("n", n, 0, error=ValueError)
    rng = random.Random(seed)  # our own generator: never touches (or depends on) global state
    return [_date_pair(rng, FIRST_DATE + datetime.timedelta(rng.randrange(N_DAYS))) for _ in range(n)]


def date_splits(n_train: int, n_test: int = 1000, seed: int = 0):
    """(train_pairs, test_pairs) where no test *date* ever appears in train, in any style.

    The n_test distinct test dates depend only on (n_test, seed), so a reported test accuracy
    always refers to the same held-out dates. Train dates are drawn from all the others.
    """
    require_int("n_train", n_train, 0, error=ValueError)
    require_int("n_test", n_test, 0, error=ValueError)
    if n_test >= N_DAYS:
        raise ValueError(f"n_test must be < {N_DAYS} (the number of dates in range), got {n_test}")
    rng = random.Random(seed)
    held_out = rng.sample(range(N_DAYS), n_test)  # distinct day offsets
    test = [_date_pair(rng, FIRST_DATE + datetime.timedelta(d)) for d in held_out]
    held_out_set, train = set(held_out), []
    while len(train) < n_train:
        d = rng.randrange(N_DAYS)
        if d not in held_out_set:  # rejection sampling: cheap, since test dates are few
            train.append(_date_pair(rng, FIRST_DATE + datetime.timedelta(d)))
    return train, test


def _random_strings(n, seed, min_len, max_len, alphabet):
    require_int("n", n, 0, error=ValueError)
    if not (isinstance(min_len, int) and isinstance(max_len, int) and 1 <= min_len <= max_len):
        raise ValueError(
            f"need integers 1 <= min_len <= max_len, got min_len={min_len!r}, max_len={max_len!r}"
        )
    if not (isinstance(alphabet, str) and alphabet):
        raise ValueError(f"alphabet must be a non-empty string, got {describe(alphabet)}")
    rng = random.Random(seed)
    return ["".join(rng.choices(alphabet, k=rng.randint(min_len, max_len))) for _ in range(n)]


def reversal_pairs(
    n: int, seed: int = 0, min_len: int = 3, max_len: int = 12, alphabet=string.ascii_lowercase
):
    """n (s, reversed s) pairs of random strings, e.g. ("abc", "cba")."""
    return [(s, s[::-1]) for s in _random_strings(n, seed, min_len, max_len, alphabet)]


def sorting_pairs(
    n: int, seed: int = 0, min_len: int = 3, max_len: int = 12, alphabet=string.ascii_lowercase
):
    """n (s, sorted chars of s) pairs of random strings, e.g. ("cab", "abc")."""
    return [(s, "".join(sorted(s))) for s in _random_strings(n, seed, min_len, max_len, alphabet)]


def seq2seq_tokenizer() -> CharTokenizer:
    """A CharTokenizer for every char the tasks above produce, with [PAD] [BOS] [EOS] [UNK]."""
    chars = " ,-" + string.digits + string.ascii_letters
    return CharTokenizer(chars, special_tokens=("[PAD]", "[BOS]", "[EOS]", "[UNK]"))


# ----------------------------------------------------------------------------- batching


def clm_batch(ids, batch_size: int, context: int, generator=None, device=None):
    """Random training windows for next-token prediction (nanoGPT's get_batch).

    ids: (N,) token ids of the whole corpus.  Returns x, y: (B, T) with T = context, where
    y[b, t] = ids[start_b + t + 1] is the token that follows x[b, t]: the targets are the inputs
    shifted left by one, so `clm_loss(model(x), y)` needs no further shifting.
    """
    ids, starts = _random_starts(ids, batch_size, context, context + 1, generator)
    offsets = starts[:, None] + torch.arange(context, device=ids.device)  # (B, T) positions in ids
    return ids[offsets].to(device), ids[offsets + 1].to(device)


def mlm_windows(ids, batch_size: int, context: int, generator=None, device=None):
    """(B, T) random windows of `ids` for masked-LM training; objectives.mask_tokens masks them."""
    ids, starts = _random_starts(ids, batch_size, context, context, generator)
    offsets = starts[:, None] + torch.arange(context, device=ids.device)  # (B, T)
    return ids[offsets].to(device)


def pad_batch(sequences, pad_id: int, side: str = "right", device=None):
    """Pad lists of ids to one (B, T) tensor, T = the longest sequence.

    Returns (ids, attention_mask), both (B, T) long, with attention_mask 1 = real token,
    0 = padding (the Hugging Face convention; `attention_mask.bool()` is a True = may-attend mask).
    side="right" suits training; side="left" suits generation, because then every row's last
    real token sits in the last column, where the next token is appended.
    """
    if side not in ("left", "right"):
        raise ValueError(f"pad_batch: side must be 'left' or 'right', got {side!r}")
    if not isinstance(pad_id, int):
        raise TypeError(f"pad_batch: pad_id must be an int, got {describe(pad_id)}")
    if not isinstance(sequences, (list, tuple)) or not sequences:
        raise ValueError(
            f"pad_batch: sequences must be a non-empty list of id lists, got {describe(sequences)}"
        )
    t = max(len(seq) for seq in sequences)
    ids = torch.full((len(sequences), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), t), dtype=torch.long)
    for row, seq in enumerate(sequences):
        span = slice(t - len(seq), t) if side == "left" else slice(0, len(seq))
        ids[row, span] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[row, span] = 1
    return ids.to(device), mask.to(device)


def seq2seq_batch(pairs, tokenizer, device=None) -> dict:
    """Teacher-forcing tensors for an encoder-decoder, from (source, target) string pairs.

    src_ids, src_mask: (B, S)  source ids, right-padded, mask 1 = real token.
    tgt_in:            (B, T)  [BOS] + target ids, padded with [PAD]: what the decoder reads.
    tgt_out:           (B, T)  target ids + [EOS], padded with -100: what it must predict.
    tgt_in[:, t] is the decoder's input at step t and tgt_out[:, t] the token it should emit
    there. Padding comes after the real tokens, so the causal mask already hides it from them.
    """
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if getattr(tokenizer, name, None) is None:
            raise ValueError(
                f"seq2seq_batch needs a tokenizer with {name}; got {name}=None (see seq2seq_tokenizer())"
            )
    if not pairs:
        raise ValueError("seq2seq_batch: pairs must be a non-empty list of (source, target) strings")
    src = [tokenizer.encode(s) for s, _ in pairs]
    tgt = [tokenizer.encode(t) for _, t in pairs]
    src_ids, src_mask = pad_batch(src, tokenizer.pad_token_id, device=device)
    tgt_in, _ = pad_batch([[tokenizer.bos_token_id, *t] for t in tgt], tokenizer.pad_token_id, device=device)
    tgt_out, _ = pad_batch([[*t, tokenizer.eos_token_id] for t in tgt], IGNORE_INDEX, device=device)
    return {"src_ids": src_ids, "src_mask": src_mask, "tgt_in": tgt_in, "tgt_out": tgt_out}


# ----------------------------------------------------------------------------- helpers


def _random_starts(ids, batch_size, context, needed, generator):
    """Validate (ids, batch_size, context); draw batch_size window starts so that `needed` ids fit."""
    if not isinstance(ids, torch.Tensor):
        ids = torch.as_tensor(ids, dtype=torch.long)
    if ids.dim() != 1:
        raise ShapeError(f"ids must be a 1-D tensor (N,) of token ids, got {describe(ids)}")
    if ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise TypeError(f"ids must hold integer token ids, got {describe(ids)}")
    require_int("batch_size", batch_size, 1, error=ValueError)
    require_int("context", context, 1, error=ValueError)
    if len(ids) < needed:
        raise ValueError(
            f"ids has {len(ids)} tokens, too short for context={context}: need at least {needed}; "
            "use a smaller context or more data"
        )
    # Starts are drawn on the CPU (where a default torch.Generator lives), then moved to the data.
    starts = torch.randint(len(ids) - needed + 1, (batch_size,), generator=generator)
    return ids.long(), starts.to(ids.device)
