"""Code written for Hugging Face `transformers`, on this package's models: change the import and the name.

    from minitransformer import AutoModelForCausalLM, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained("shakespeare-char")
    model = AutoModelForCausalLM.from_pretrained("shakespeare-char")
    input_ids = tokenizer.encode("ROMEO:", return_tensors="pt")
    output = model.generate(input_ids, max_length=60, num_beams=5, early_stopping=True)
    print(tokenizer.decode(output[0], skip_special_tokens=True))

    outputs = model(input_ids, labels=input_ids)  # fine-tuning: the labels are shifted inside, as in HF
    outputs.loss.backward()

The lesson classes (GPT, MaskedLM, Seq2SeqTransformer, the tokenizers) keep their own small interfaces; the
classes here wrap them in Hugging Face's: `from_pretrained` (a bundled name or a checkpoint path), a
tokenizer called on text with `return_tensors="pt"` and `padding=`, `model(..., labels=)` returning an
output with `.loss` and `.logits`, and `model.generate`. The wrapped objects are `.model` / `.tokenizer`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import describe
from ..generation import generate
from ..models import GPT, MaskedLM, Seq2SeqTransformer
from ..objectives import IGNORE_INDEX, clm_loss, mlm_loss, seq2seq_loss
from ..tokenizers import load_tokenizer
from .pretrained import load_model


@dataclass
class ModelOutput:
    """What a Hugging Face model returns: the loss when labels were given, and the logits (B, T, V)."""

    loss: torch.Tensor | None
    logits: torch.Tensor

    def __getitem__(self, i):  # outputs[0]: the loss when there is one, else the logits, as in HF
        return [x for x in (self.loss, self.logits) if x is not None][i]


class HFTokenizer:
    """A tokenizer with Hugging Face's calling conventions; the package's tokenizer is `.tokenizer`."""

    def __init__(self, tokenizer, padding_side: str = "right"):
        self.tokenizer, self.padding_side = tokenizer, padding_side

    def __getattr__(self, name):  # vocab_size, pad_token_id, eos_token_id, ... come from the tokenizer
        return getattr(self.tokenizer, name)

    def __len__(self):
        return len(self.tokenizer)

    def encode(self, text: str, return_tensors: str | None = None):
        ids = self.tokenizer.encode(text)
        return _as_tensor([ids], return_tensors) if return_tensors else ids

    def __call__(self, text, return_tensors: str | None = None, padding: bool | str = False):
        """text or a list of texts -> {"input_ids", "attention_mask"}; padding=True pads to the longest."""
        batch = [text] if isinstance(text, str) else list(text)
        rows = [self.tokenizer.encode(t) for t in batch]
        if padding and padding != "do_not_pad":
            rows, masks = self._pad(rows)
        else:
            masks = [[1] * len(r) for r in rows]
        if isinstance(text, str) and not return_tensors:
            return {"input_ids": rows[0], "attention_mask": masks[0]}
        if not return_tensors:
            return {"input_ids": rows, "attention_mask": masks}
        return {"input_ids": _as_tensor(rows, return_tensors), "attention_mask": _as_tensor(masks, return_tensors)}

    def _pad(self, rows):
        pad = self.tokenizer.pad_token_id
        if pad is None:
            raise ValueError("padding=True needs a tokenizer with a pad token ([PAD]); this one has none")
        longest = max(map(len, rows))
        fill = lambda r: [pad] * (longest - len(r))  # noqa: E731
        if self.padding_side == "left":
            return [fill(r) + r for r in rows], [[0] * (longest - len(r)) + [1] * len(r) for r in rows]
        return [r + fill(r) for r in rows], [[1] * len(r) + [0] * (longest - len(r)) for r in rows]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def batch_decode(self, sequences, skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(row, skip_special_tokens=skip_special_tokens) for row in sequences]


def _as_tensor(rows, return_tensors):
    if return_tensors != "pt":
        raise ValueError(f"return_tensors must be 'pt' (PyTorch tensors) or None, got {describe(return_tensors)}")
    lengths = {len(r) for r in rows}
    if len(lengths) > 1:
        raise ValueError("texts of different lengths need padding=True to make one tensor")
    return torch.tensor(rows, dtype=torch.long)


class AutoTokenizer:
    @staticmethod
    def from_pretrained(name_or_path, padding_side: str = "right") -> HFTokenizer:
        """A bundled model's name, a checkpoint path, or a tokenizer JSON file -> its tokenizer."""
        path = Path(str(name_or_path))
        if path.suffix == ".json":
            return HFTokenizer(load_tokenizer(path), padding_side)
        _, tokenizer = load_model(name_or_path)
        if tokenizer is None:
            raise ValueError(f"{str(name_or_path)!r} holds no tokenizer; load one from its JSON file")
        return HFTokenizer(tokenizer, padding_side)


class HFModel(nn.Module):
    """A model with Hugging Face's conventions; the package's model is `.model`."""

    family: type = GPT

    def __init__(self, model, tokenizer=None):
        super().__init__()
        if not isinstance(model, self.family):
            raise TypeError(f"{type(self).__name__} wraps a {self.family.__name__}, got {describe(model)}")
        self.model = model
        # Hugging Face keeps the special ids in the model's generation config; ours come from its tokenizer.
        ids = {name: getattr(tokenizer, name, None) for name in ("bos_token_id", "eos_token_id", "pad_token_id")}
        self.generation_config = {name: i for name, i in ids.items() if i is not None}

    @classmethod
    def from_pretrained(cls, name_or_path):
        """A bundled model's name or the path of a checkpoint written by save_checkpoint."""
        return cls(*load_model(name_or_path))

    @property
    def config(self):
        return self.model.config

    def generate(self, input_ids=None, attention_mask=None, **kwargs):
        return generate(self.model, input_ids, attention_mask=attention_mask, **(self.generation_config | kwargs))

    # the decoding interface (models/base.py): mt.generate(hf_model, ...) works too
    def source_inputs(self, **source):
        return self.model.source_inputs(**source)

    def new_cache(self):
        return self.model.new_cache()

    def next_token_logits(self, input_ids, **kwargs):
        return self.model.next_token_logits(input_ids, **kwargs)


class AutoModelForCausalLM(HFModel):
    """GPT: `model(input_ids, labels=input_ids)` scores every token on the next one (the shift is inside)."""

    family = GPT

    def forward(self, input_ids, attention_mask=None, labels=None):
        logits = self.model(input_ids, attention_mask)  # (B, T, V)
        loss = None
        if labels is not None:
            targets = labels[:, 1:]
            if attention_mask is not None:  # padding is not scored
                targets = targets.masked_fill(attention_mask[:, 1:] == 0, IGNORE_INDEX)
            loss = clm_loss(logits[:, :-1], targets)
        return ModelOutput(loss, logits)


class AutoModelForMaskedLM(HFModel):
    """MaskedLM: labels hold the original ids at masked positions and -100 elsewhere (`mask_tokens`)."""

    family = MaskedLM

    def forward(self, input_ids, attention_mask=None, labels=None):
        logits = self.model(input_ids, attention_mask)
        return ModelOutput(None if labels is None else mlm_loss(logits, labels), logits)

    def generate(self, *args, **kwargs):
        raise TypeError("a masked LM fills in blanks and does not generate: use pipeline('fill-mask', ...)")


class AutoModelForSeq2SeqLM(HFModel):
    """Seq2SeqTransformer: input_ids is the source; generate writes the target from its start token."""

    family = Seq2SeqTransformer

    def forward(self, input_ids, attention_mask=None, decoder_input_ids=None, labels=None):
        logits = self.model(input_ids, decoder_input_ids, attention_mask)
        return ModelOutput(None if labels is None else seq2seq_loss(logits, labels), logits)

    def generate(self, input_ids=None, attention_mask=None, tokenizer=None, **kwargs):
        kwargs = self.generation_config | {"max_new_tokens": self.config.max_len - 1} | kwargs
        return generate(self.model, src_ids=input_ids, src_mask=attention_mask, tokenizer=tokenizer, **kwargs)
