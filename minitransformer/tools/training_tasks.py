"""Training tasks: where batches come from and how a batch becomes a loss.

The trainer (training/trainer.py) is the same loop for every model; a task supplies the two things
that differ between pre-training objectives:
- `batch(split, generator)`: a dict of tensors for "train" or "val";
- `loss(model, batch)`: (scalar loss, dict of extra metrics).

- CausalLMTask: GPT, next-token prediction on random windows (CLM).
- MaskedLMTask: MaskedLM, 15% of tokens hidden and predicted (BERT's MLM).
- Seq2SeqTask: Seq2SeqTransformer, teacher-forced target prediction.
"""

from __future__ import annotations

import random

import torch

from ..data import clm_batch, mlm_windows, seq2seq_batch
from ..objectives import clm_loss, mask_tokens, masked_accuracy, mlm_loss, seq2seq_loss


class CausalLMTask:
    def __init__(self, train_ids, val_ids, context: int, batch_size: int):
        self.ids = {"train": torch.as_tensor(train_ids), "val": torch.as_tensor(val_ids)}
        self.context, self.batch_size = context, batch_size

    def batch(self, split, generator):
        x, y = clm_batch(self.ids[split], self.batch_size, self.context, generator=generator)
        return {"x": x, "y": y}

    def loss(self, model, batch):
        return clm_loss(model(batch["x"]), batch["y"]), {}


class MaskedLMTask:
    def __init__(self, train_ids, val_ids, context: int, batch_size: int, tokenizer, mlm_probability=0.15):
        self.ids = {"train": torch.as_tensor(train_ids), "val": torch.as_tensor(val_ids)}
        self.context, self.batch_size = context, batch_size
        self.tokenizer, self.mlm_probability = tokenizer, mlm_probability

    def batch(self, split, generator):
        ids = mlm_windows(self.ids[split], self.batch_size, self.context, generator=generator)
        masked, labels = mask_tokens(ids, self.tokenizer, self.mlm_probability, generator=generator)
        return {"x": masked, "labels": labels}

    def loss(self, model, batch):
        logits = model(batch["x"])
        return mlm_loss(logits, batch["labels"]), {
            "masked_accuracy": masked_accuracy(logits, batch["labels"])
        }


class Seq2SeqTask:
    def __init__(self, train_pairs, val_pairs, tokenizer, batch_size: int, label_smoothing: float = 0.0):
        self.pairs = {"train": list(train_pairs), "val": list(val_pairs)}
        self.tokenizer, self.batch_size, self.label_smoothing = tokenizer, batch_size, label_smoothing

    def batch(self, split, generator):
        pool = self.pairs[split]
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        chosen = random.Random(seed).sample(pool, min(self.batch_size, len(pool)))
        return seq2seq_batch(chosen, self.tokenizer)

    def loss(self, model, batch):
        logits = model(batch["src_ids"], batch["tgt_in"], batch["src_mask"])
        smoothing = self.label_smoothing if model.training else 0.0  # report plain cross-entropy on val
        return seq2seq_loss(logits, batch["tgt_out"], label_smoothing=smoothing), {}
