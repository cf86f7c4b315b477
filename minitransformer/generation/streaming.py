"""Streaming: each new token as soon as it is chosen, as text when a tokenizer is given."""

from __future__ import annotations

import torch

from ..errors import ConfigError, ShapeError
from .decoding import Decoding, eval_mode
from .loop import decode_steps
from .settings import settings_from


def stream(model, input_ids, tokenizer=None, *, attention_mask=None, src_ids=None, src_mask=None,
           settings=None, generator=None, prefix_allowed_tokens_fn=None, **knobs):
    """Yield each new token as soon as it is chosen: its id, or with a tokenizer its text.

    One sequence (batch size 1), greedy or sampling; the knobs are generate's keyword arguments,
    and the tokens are the ones `generate` returns. input_ids may be a string when a tokenizer is
    given. Text comes in whole characters: a token that ends inside a multi-byte character is held
    back until the character is complete. Beam search cannot be streamed: its best sequence is
    known only at the end. prefix_allowed_tokens_fn constrains each step as in `generate`. The model
    stays in eval mode until the stream ends or is closed.
    """
    settings = settings_from(settings, knobs, "stream")
    if settings.num_beams > 1:
        raise ConfigError(f"stream cannot follow beam search (num_beams={settings.num_beams}): the best "
                          "beam is known only at the end; use generate(..., num_beams=...)")
    with eval_mode(model):
        run = Decoding(model, settings, encode_prompt(input_ids, tokenizer), attention_mask, src_ids, src_mask,
                       tokenizer, generator, prefix_allowed_tokens_fn)
        if run.ids.shape[0] != 1:
            raise ShapeError(f"stream follows one sequence: it needs batch size 1 and num_return_sequences=1, "
                             f"got {run.ids.shape[0]} sequences")
        steps = (int(new_tokens[0]) for new_tokens, _ in decode_steps(run))
        yield from (steps if tokenizer is None else _whole_characters(steps, tokenizer))


def _whole_characters(new_ids, tokenizer):
    """Token ids -> pieces of text, held back while the text ends inside a character."""
    ids, shown = [], ""
    for i in new_ids:
        ids.append(i)
        text = tokenizer.decode(ids, skip_special_tokens=True)
        if len(text) > len(shown) and not text.endswith("\ufffd"):  # "\ufffd": half a character so far
            yield text[len(shown) :]
            shown = text
    text = tokenizer.decode(ids, skip_special_tokens=True)
    if len(text) > len(shown):
        yield text[len(shown) :]


def encode_prompt(input_ids, tokenizer):
    """A string prompt -> (1, T) ids with the tokenizer; ids pass through."""
    if not isinstance(input_ids, str):
        return input_ids
    if tokenizer is None:
        raise TypeError("input_ids is a string: pass tokenizer= to encode it, or pass token ids")
    return torch.tensor([tokenizer.encode(input_ids)])
