"""What the model is trained to predict: the three classic Transformer objectives.

- Causal LM (GPT): predict token t+1 from tokens <= t.            `clm_loss`, `shift_for_clm`
- Masked LM (BERT): hide 15% of tokens, predict them from both sides.  `mask_tokens`, `mlm_loss`
- Seq2seq (the 2017 paper): predict the target given the source and the target so far
  (teacher forcing), optionally with label smoothing.                 `seq2seq_loss`

All three are the same cross-entropy, -log softmax(logits)[label], averaged over the positions
that have a label. Positions without one carry the label -100 (`IGNORE_INDEX`), the value that
`torch.nn.functional.cross_entropy` and Hugging Face skip: padding, unmasked MLM tokens.

Used by training (tools/training_tasks.py) and notebooks 07 (GPT), 08 (masked LM) and 09 (seq2seq).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .checks import checked
from .errors import ShapeError, describe

IGNORE_INDEX = -100


def _smoothing(name, value):
    if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


def _logits_and(labels_name):
    """A check for `@checked`: logits (B, T, V) float and labels (B, T) integer, matching in B and T."""

    def check(args):
        logits, labels = args["logits"], args[labels_name]
        if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
            raise ShapeError(f"logits must be a (B, T, V) tensor, got {describe(logits)}")
        if not logits.dtype.is_floating_point:
            raise TypeError(f"logits must be floating point (unnormalised scores), got {describe(logits)}")
        if not isinstance(labels, torch.Tensor) or labels.shape != logits.shape[:2]:
            raise ShapeError(
                f"{labels_name} must be a (B, T) tensor matching logits {tuple(logits.shape)}, i.e. shape "
                f"{tuple(logits.shape[:2])}, got {describe(labels)}"
            )
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise TypeError(f"{labels_name} must hold integer token ids (or -100), got {describe(labels)}")

    return check


def _same_shape_mask(args):
    input_ids, attention_mask = args["input_ids"], args["attention_mask"]
    if attention_mask is not None and (
        not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape
    ):
        raise ShapeError(
            f"attention_mask must have input_ids' shape {tuple(input_ids.shape)}, got {describe(attention_mask)}"
        )


def _shift_inputs(args):
    input_ids = args["input_ids"]
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.shape[1] < 2:
        raise ShapeError(f"input_ids must be a (B, T) tensor with T >= 2, got {describe(input_ids)}")
    _same_shape_mask(args)


def _masking_inputs(args):
    input_ids, tokenizer, p = args["input_ids"], args["tokenizer"], args["mlm_probability"]
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
        raise ShapeError(f"input_ids must be a (B, T) tensor of token ids, got {describe(input_ids)}")
    if getattr(tokenizer, "mask_token_id", None) is None:
        raise ValueError(
            "mask_tokens needs a tokenizer with a [MASK] token, got mask_token_id=None; "
            "build it with special_tokens=('[PAD]', '[UNK]', '[MASK]', ...)"
        )
    if not (isinstance(p, (int, float)) and 0.0 <= p <= 1.0):
        raise ValueError(f"mlm_probability must be a number in [0, 1], got {p!r}")
    _same_shape_mask(args)
    if tokenizer.vocab_size <= len(tokenizer.special_token_ids):
        raise ValueError(f"mask_tokens: the tokenizer has no regular tokens (vocab_size={tokenizer.vocab_size})")


def _cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, label_smoothing=0.0):
    # cross_entropy wants classes on axis 1; flattening (B, T, V) -> (B*T, V) is the simplest way.
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),  # (B*T, V)
        labels.reshape(-1).long(),  # (B*T,)
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )


# ----------------------------------------------------------------------------- causal LM


@checked(_logits_and("targets"))
def clm_loss(logits, targets, ignore_index: int = IGNORE_INDEX):
    """Mean next-token cross-entropy over positions whose target is not `ignore_index`.

    logits: (B, T, V), the model's scores at each position.  targets: (B, T).
    Convention: targets are *already shifted*: targets[b, t] is the token that follows
    input[b, t], exactly what `data.clm_batch` returns as y. If you instead hold one sequence and
    want the Hugging Face "labels = input_ids" style, split it with `shift_for_clm` first.
    If every target is ignored the mean is over nothing and the result is nan.
    """
    return _cross_entropy(logits, targets, ignore_index)


@checked(_shift_inputs)
def shift_for_clm(input_ids, attention_mask=None):
    """One (B, T) sequence -> (inputs, labels), both (B, T - 1), for next-token prediction.

    inputs = input_ids[:, :-1] and labels = input_ids[:, 1:]: position t reads token t and is
    scored on token t + 1. (Hugging Face models take labels = input_ids and do this shift
    inside the loss; we do it once, in the open.) Labels that are padding (attention_mask 0)
    become -100, so a padded batch is scored only on real tokens.
    """
    labels = input_ids[:, 1:].clone()  # clone: never write into the caller's tensor
    if attention_mask is not None:
        labels[attention_mask[:, 1:] == 0] = IGNORE_INDEX
    return input_ids[:, :-1], labels


# ----------------------------------------------------------------------------- masked LM


@checked(_masking_inputs)
def mask_tokens(input_ids, tokenizer, mlm_probability: float = 0.15, generator=None, attention_mask=None):
    """BERT's corruption: returns (masked_ids, labels), both (B, T), input_ids left untouched.

    Each position that is neither a special token nor padding is *selected* with probability
    mlm_probability. A selected token becomes [MASK] with probability 0.8, a random regular
    (non-special) token with 0.1, and stays as it is with 0.1. The random and unchanged 20% keep
    the model from learning that only [MASK] positions matter, since [MASK] never appears at
    fine-tuning time. labels hold the original id at selected positions and -100 elsewhere.

    tokenizer supplies mask_token_id, special_token_ids and vocab_size.
    attention_mask: optional (B, T), 1 = real token, 0 = padding (never selected).
    """
    specials = sorted(tokenizer.special_token_ids)
    regular = torch.tensor([i for i in range(tokenizer.vocab_size) if i not in tokenizer.special_token_ids])

    # Random draws happen on the CPU, where a default torch.Generator lives; results move back.
    ids = input_ids.detach().cpu().long()
    can_select = ~torch.isin(ids, torch.tensor(specials, dtype=torch.long))  # (B, T)
    if attention_mask is not None:
        can_select &= attention_mask.detach().cpu() != 0
    selected = (torch.rand(ids.shape, generator=generator) < mlm_probability) & can_select
    # One more uniform draw per position splits the selected ones 80 / 10 / 10.
    u = torch.rand(ids.shape, generator=generator)
    to_mask = selected & (u < 0.8)
    to_random = selected & (u >= 0.8) & (u < 0.9)  # the remaining u >= 0.9 stay unchanged
    random_ids = regular[torch.randint(len(regular), ids.shape, generator=generator)]  # (B, T)

    masked = ids.clone()
    masked[to_mask] = tokenizer.mask_token_id
    masked[to_random] = random_ids[to_random]
    labels = torch.where(selected, ids, torch.full_like(ids, IGNORE_INDEX))
    return masked.to(input_ids.device), labels.to(input_ids.device)


@checked(_logits_and("labels"))
def mlm_loss(logits, labels):
    """Mean cross-entropy over the selected positions (labels != -100). logits (B, T, V), labels (B, T)."""
    return _cross_entropy(logits, labels)


@checked(_logits_and("labels"))
@torch.no_grad()
def masked_accuracy(logits, labels) -> float:
    """Fraction of selected positions (labels != -100) whose argmax prediction is right; nan if none."""
    keep = labels != IGNORE_INDEX
    if not keep.any():
        return float("nan")
    return (logits.argmax(dim=-1)[keep] == labels[keep]).float().mean().item()


# ----------------------------------------------------------------------------- seq2seq


@checked(_logits_and("labels"), label_smoothing=_smoothing)
def seq2seq_loss(logits, labels, label_smoothing: float = 0.0, ignore_index: int = IGNORE_INDEX):
    """Teacher-forced cross-entropy for a decoder: logits (B, T, V), labels (B, T).

    labels are `data.seq2seq_batch(...)["tgt_out"]`: the target shifted left by one relative to
    the decoder input tgt_in, with -100 at padding. With label_smoothing = eps the target
    distribution puts 1 - eps on the right token and spreads eps evenly over all V classes
    (the paper used eps = 0.1): the model is penalised for being over-confident.
    """
    return _cross_entropy(logits, labels, ignore_index, label_smoothing)
