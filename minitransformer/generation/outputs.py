"""What `generate` returns besides the tokens: Hugging Face's `return_dict_in_generate` outputs.

    out = generate(model, ids, max_new_tokens=5, return_dict_in_generate=True,
                   output_scores=True, output_logits=True, output_attentions=True)
    out.sequences       (B * n, T + new)
    out.scores          one (B * n, V) tensor per new token: the scores after the logits processors
                        (beam search: the processed log-probabilities of the running beams)
    out.logits          one (B * n, V) tensor per new token: the model's raw next-token logits
    out.attentions      one tuple per new token, one (B * n, H, q, k) tensor per layer; the first step
                        reads the whole prompt (q = T), every later step one new token (q = 1)
    Seq2SeqTransformer: decoder_attentions and cross_attentions instead of attentions.
The fields and their order follow Hugging Face's GenerateDecoderOnlyOutput (tests/test_generation_outputs.py
compares them on a GPT-2). Attention weights come from the readable reference path, so asking for them
turns the fast one-token step off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class GenerationOutput:
    """What `generate(..., return_dict_in_generate=True)` returns; see the module docstring."""

    sequences: torch.Tensor
    sequences_scores: torch.Tensor | None = None  # beam search: (B * n,) sum log p / new ** length_penalty
    scores: tuple | None = None
    logits: tuple | None = None
    attentions: tuple | None = None
    decoder_attentions: tuple | None = None
    cross_attentions: tuple | None = None
    trace: list | None = None  # beam search with return_trace=True: see beam_search.record_step


class Recorder:
    """Collects, step by step, what the caller asked for (each a list, None when not asked)."""

    def __init__(self, scores=False, logits=False, attentions=False):
        self.scores, self.logits = ([] if scores else None), ([] if logits else None)
        self.attentions = [] if attentions else None

    def step(self, logits, attentions):
        if self.logits is not None:
            self.logits.append(logits.clone())
        if self.attentions is not None:
            self.attentions.append(attentions)

    def processed(self, scores):
        if self.scores is not None:
            self.scores.append(scores.clone())

    def fields(self) -> dict:
        """The GenerationOutput fields this recording fills, as tuples of ordinary tensors."""
        out = {"scores": _tuple(self.scores), "logits": _tuple(self.logits)}
        if self.attentions and isinstance(self.attentions[0], dict):  # encoder-decoder
            out["decoder_attentions"] = tuple(_tuple(a["decoder"]) for a in self.attentions)
            out["cross_attentions"] = tuple(_tuple(a["cross"]) for a in self.attentions)
        elif self.attentions is not None:
            out["attentions"] = tuple(_tuple(a) for a in self.attentions)
        return out


def _tuple(tensors):
    return None if tensors is None else tuple(t.clone() for t in tensors)  # clone: out of inference mode
