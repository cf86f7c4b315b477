"""A teaching view of one decoding step: the next token's distribution after each processing stage."""

from __future__ import annotations

import torch

from ..checks import require_int
from ..errors import ShapeError
from ..logits import logits_stages
from .decoding import Decoding, check_model_output, eval_mode
from .settings import settings_from
from .streaming import encode_prompt


def next_token_distribution(model, input_ids, tokenizer=None, top=10, *, src_ids=None, src_mask=None,
                            settings=None, **knobs):
    """The next token's distribution after each processing stage, for one prompt, when sampling.

    input_ids: (1, T), or a string with a tokenizer (Seq2Seq: the decoder's tokens so far, with
    src_ids the source); the knobs are generate's (temperature=, top_k=, top_p=, ...). Returns
    {"settings": the GenerationSettings used, "stages": [stage, ...]}, one stage per active step of
    `logits.logits_stages`, in order: "raw", "repetition penalty", "no-repeat n-gram",
    "temperature", "top-k", "top-p", "min-p", "typical". Each stage is
        {"name": str, "probs": (V,) tensor, "n_kept": number of tokens with probability > 0,
         "top_ids": the `top` most likely ids, "top_probs": their probabilities, "top_tokens": their text}
    ("top_tokens" only with a tokenizer). The last stage is what `generate(do_sample=True)` samples from.
    """
    require_int("top", top, 1)
    settings = settings_from(settings, {**knobs, "do_sample": True}, "next_token_distribution")
    with eval_mode(model), torch.inference_mode():
        run = Decoding(model, settings, encode_prompt(input_ids, tokenizer), None, src_ids, src_mask, tokenizer, None)
        if run.ids.shape[0] != 1:
            raise ShapeError(f"next_token_distribution looks at one prompt: input_ids must be (1, T), "
                             f"got {tuple(run.ids.shape)}")
        logits = run.next_logits(run.ids, None)  # (1, V)
        check_model_output(logits, run.ids.shape[1])
        stages = logits_stages(logits, run.ids, settings, do_sample=True)
    return {"settings": settings, "stages": [_describe_stage(name, scores, top, tokenizer) for name, scores in stages]}


def _describe_stage(name, scores, top, tokenizer):
    probs = scores.softmax(dim=-1)[0]  # (V,); outside inference mode: an ordinary tensor
    best = probs.topk(min(top, probs.numel()))
    stage = {"name": name, "probs": probs, "n_kept": int((probs > 0).sum()),
             "top_ids": best.indices.tolist(), "top_probs": best.values.tolist()}
    if tokenizer is not None:
        stage["top_tokens"] = [tokenizer.decode([i]) for i in stage["top_ids"]]
    return stage
