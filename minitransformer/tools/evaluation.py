"""Scoring a trained model on held-out data, the same way every time.

- `clm_validation_loss`: mean next-token cross-entropy (nats per token) over consecutive,
  non-overlapping windows of the validation text, the number published for char-level
  Shakespeare models;
- `masked_accuracy_on`: how often a MaskedLM recovers the characters hidden by `mask_tokens`;
- `exact_match`: the share of seq2seq outputs equal to the target, character for character;
- `poem_validation_loss`: nats per character over whole held-out poems, each scored on its own.

Used by tests/test_pretrained.py to hold every bundled model to its recorded quality.
"""

from __future__ import annotations

import functools

import torch

from ..data import IGNORE_INDEX, clm_batch, pad_batch
from ..generation import eval_mode, generate
from ..objectives import clm_loss, mask_tokens, masked_accuracy
from ..poems import POEM_END


def scored(fn):
    """Score without gradients and without dropout (a model left in training mode would be scored with it)."""

    @functools.wraps(fn)
    def in_eval_mode(model, *args, **kwargs):
        with torch.inference_mode(), eval_mode(model):
            return fn(model, *args, **kwargs)

    return in_eval_mode


@scored
def clm_validation_loss(model, ids, context=None, max_windows=None, batch_size=16) -> float:
    """Mean CLM loss over non-overlapping windows of `ids` (1-D), each of `context` tokens.

    max_windows: score only this many windows, spread evenly over the whole text (its start is
    easier than its end, so the first windows alone would flatter the model).
    """
    ids = torch.as_tensor(ids)
    context = context or model.config.max_len
    n = (len(ids) - 1) // context
    chosen = torch.arange(n)
    if max_windows is not None and max_windows < n:
        chosen = torch.linspace(0, n - 1, max_windows).round().long()
    starts = chosen * context
    total, count = 0.0, 0
    for chunk in starts.split(batch_size):
        x = torch.stack([ids[s : s + context] for s in chunk.tolist()])
        y = torch.stack([ids[s + 1 : s + context + 1] for s in chunk.tolist()])
        total += clm_loss(model(x).float(), y).item() * x.numel()
        count += x.numel()
    return total / count


@scored
def masked_accuracy_on(model, tokenizer, ids, context=None, n_batches=10, batch_size=32, seed=0) -> float:
    """Share of masked positions (15%, chosen with a fixed seed) predicted exactly."""
    g = torch.Generator().manual_seed(seed)
    context = context or model.config.max_len
    correct = []
    for _ in range(n_batches):
        windows, _ = clm_batch(torch.as_tensor(ids), batch_size, context, generator=g)
        masked, labels = mask_tokens(windows, tokenizer, generator=g)
        correct.append(masked_accuracy(model(masked), labels))
    return sum(correct) / len(correct)


@scored
def exact_match(model, tokenizer, pairs, batch_size=200, max_new_tokens=16) -> float:
    """Greedy-decode every source of `pairs` and count outputs equal to their target."""
    hits = 0
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i : i + batch_size]
        src, src_mask = pad_batch([tokenizer.encode(s) for s, _ in chunk], tokenizer.pad_token_id)
        out = generate(
            model,
            src_ids=src,
            src_mask=src_mask,
            max_new_tokens=max_new_tokens,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        for row, (_, target) in zip(out, chunk, strict=True):
            hits += tokenizer.decode(row.tolist(), skip_special_tokens=True) == target
    return hits / len(pairs)


def poem_sequences(tokenizer, poems) -> list[list[int]]:
    """Each poem as the ids of "\\n" + text + "\\n": the newline that announces a poem, the poem, the one that ends it."""
    return [tokenizer.encode(POEM_END + p["text"] + POEM_END) for p in poems]


@scored
def poem_validation_loss(model, tokenizer, poems, batch_size=16) -> float:
    """Nats per character over every poem of `poems`, each scored on its own from its opening newline.

    Every character of each poem and its closing newline is predicted (a character the tokenizer maps to
    [UNK] counts as predicting [UNK]); padding is ignored. The number for the bundled tang-poetry-char.
    """
    sequences = sorted(poem_sequences(tokenizer, poems), key=len)  # batches of like lengths: little padding
    total, count = 0.0, 0
    for i in range(0, len(sequences), batch_size):
        ids, mask = pad_batch(sequences[i : i + batch_size], pad_id=0)  # (B, T), 1 = real token
        targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, IGNORE_INDEX)  # (B, T-1)
        logits = model(ids[:, :-1]).float()  # (B, T-1, V); right padding is never attended by real tokens
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")
        total += loss.item()
        count += int((targets != IGNORE_INDEX).sum())
    return total / count
