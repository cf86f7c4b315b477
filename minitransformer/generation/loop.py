"""Text generation: from next-token distributions to whole sequences, with Hugging Face's semantics.

A language model scores every vocabulary token as the next one. Generation appends a chosen token
and asks again, until an end-of-sequence token (EOS) or the length limit:

    ids ─model─> logits (B, V) ─processors (logits.py)─> scores ─choose─> next ids (B,) ─append─> ...

How the next token is chosen:
* greedy search (do_sample=False): the argmax. Deterministic, and prone to loops.
* multinomial sampling (do_sample=True): a draw from softmax(scores), after temperature, top-k,
  top-p, min-p and typical filtering. A seeded torch.Generator makes it reproducible.
* beam search (num_beams=K > 1): keep the K best partial sequences (beam_search.py); beam
  sampling (num_beams > 1 and do_sample=True) draws the candidates instead of taking the best.

Arguments and defaults are those of Hugging Face's `generate` (transformers 5: the GenerationConfig
defaults, and `GenerationMixin.generate`, `_sample`, `_beam_search` in generation/utils.py);
tests/test_generation.py compares the outputs token for token on a GPT-2. In particular:
* max_new_tokens counts new tokens, max_length the prompt too; with neither, 20 new tokens
  (fewer if the model's context max_len ends sooner);
* top_k is 50 unless you say otherwise, so sampling draws from the 50 most likely tokens;
* a sequence that writes an EOS id is finished: while the rest of the batch goes on it grows by
  pad_token_id (which defaults to the first EOS id); min_new_tokens forbids EOS until then;
* prompts of different lengths are padded on the left and come with an attention_mask (1 = real
  token); positions then count real tokens only (mask.cumsum - 1), as Hugging Face's do. Padding
  on the right gets Hugging Face's warning ("right-padding was detected"): new tokens would follow it.

With use_cache=True (the default) the model keeps every layer's keys and values (kv_cache.py)
and each step runs only the newest token; use_cache=False reruns the whole sequence each step and
gives the same tokens. Beyond Hugging Face: a model sees at most config.max_len tokens, so longer
sequences are cut to their newest max_len tokens (a sliding window, recomputed each step) with a
warning, where Hugging Face would fail. The buffers grow as tokens arrive (max_new_tokens=10**9
reserves nothing), and a call that asks for more sequences side by side than the device's memory
can hold is refused before the first token (memory.py). Token ids of any integer dtype (uint8,
int16, int32) are read as torch.long; the result is always torch.long. Used in the sampling and
decoding notebooks.
"""

from __future__ import annotations

import torch

from ..beam_search import beam_search
from ..errors import ConfigError, describe
from .assisted import assisted_greedy
from .decoding import Decoding, eval_mode, grown
from .outputs import GenerationOutput, Recorder
from .settings import settings_from


def generate(model, input_ids=None, *, attention_mask=None, src_ids=None, src_mask=None, settings=None,
             tokenizer=None, generator=None, streamer=None, prefix_allowed_tokens_fn=None, return_dict=False,
             return_trace=False, return_dict_in_generate=False, output_scores=False, output_logits=False,
             output_attentions=False, assistant_model=None, **knobs):
    """Continue each prompt of input_ids (B, T); returns token ids (B * n, T + new), n = num_return_sequences.

    The decoding knobs are Hugging Face's keywords (max_new_tokens=, do_sample=, top_p=, num_beams=,
    ...), each a field of `GenerationSettings`, which documents them; or pass settings=GenerationSettings(...).
    GPT: input_ids are the prompts, attention_mask (B, T) marks real tokens 1 and left padding 0.
    Seq2SeqTransformer: src_ids (B, S) and src_mask are the source; the decoder starts from
    bos_token_id (the "decoder start" token), or from input_ids if given, and the result is the
    decoder's sequence, start token included, as with Hugging Face encoder-decoder models.
    No input_ids (or T = 0): every sequence starts with bos_token_id.
    generator=torch.Generator().manual_seed(0) makes sampling repeatable; tokenizer= is needed by
    stop_strings. streamer: an object with put(ids) and end(), like Hugging Face's TextStreamer (see
    also `stream`). prefix_allowed_tokens_fn(batch_id, ids) -> list of token ids: only those may come
    next (constraints.py; ids is the row's 1-D sequence so far, prompt included).
    return_dict_in_generate=True (or return_dict=True): a GenerationOutput, with sequences_scores for
    beam search, and the per-step scores, logits and attention weights asked for with output_scores /
    output_logits / output_attentions (generation/outputs.py). return_trace=True (beam search) also
    records the whole search, for drawing the tree. assistant_model: a cheaper model with the same
    vocabulary (e.g. a bfloat16 copy) that drafts tokens for this one to check: the same greedy output,
    faster (assisted.py).
    """
    settings = settings_from(settings, knobs, "generate")
    if return_trace and settings.num_beams == 1:
        raise ConfigError("return_trace=True records a beam search: it needs num_beams > 1, got num_beams=1")
    if streamer is not None and settings.num_beams > 1:
        raise ConfigError(f"a streamer cannot follow beam search (num_beams={settings.num_beams}): the best "
                          "beam is known only at the end")
    if streamer is not None and not all(callable(getattr(streamer, m, None)) for m in ("put", "end")):
        raise TypeError(f"streamer must have put(ids) and end() methods, like Hugging Face's TextStreamer, "
                        f"got {describe(streamer)}")
    scores = trace = None
    recorder = Recorder(output_scores, output_logits, output_attentions)
    with eval_mode(model), torch.inference_mode():
        run = Decoding(model, settings, input_ids, attention_mask, src_ids, src_mask, tokenizer, generator,
                       prefix_allowed_tokens_fn)
        run.recorder = recorder if output_scores or output_logits or output_attentions else None
        if assistant_model is not None:
            sequences = assisted_greedy(run, assistant_model, streamer)
        elif settings.num_beams > 1:
            sequences, scores, trace = _beam_search(run, return_trace)
        else:
            sequences = _greedy_or_sampling(run, streamer)
    sequences = sequences.clone()  # outside inference mode: an ordinary tensor for the caller
    if return_dict or return_dict_in_generate or return_trace:
        return GenerationOutput(sequences, None if scores is None else scores.clone(), trace=trace,
                                **recorder.fields())
    return sequences


def _greedy_or_sampling(run, streamer):
    if streamer is not None:
        streamer.put(run.ids.cpu())
    for new_tokens, sequences in decode_steps(run):  # noqa: B007 (the last one is the result)
        if streamer is not None:
            streamer.put(new_tokens.cpu())
    if streamer is not None:
        streamer.end()
    return sequences


@torch.inference_mode()  # on a generator function, torch enters the mode around each step only
def decode_steps(run):
    """Greedy search or sampling, one token per iteration: yields (new ids (B,), all ids so far (B, L))."""
    B, T = run.ids.shape
    ids = run.ids  # (B, capacity): grown as tokens arrive, so max_new_tokens=10**9 reserves nothing
    unfinished = torch.ones(B, dtype=torch.bool, device=ids.device)
    for length in range(T, run.max_length):
        logits = run.next_logits(ids[:, :length], run.mask_upto(length))  # (B, V)
        scores = run.process(logits, ids[:, :length], length - T)
        if run.settings.do_sample:
            new = torch.multinomial(scores.softmax(dim=-1), 1, generator=run.generator).squeeze(1)  # (B,)
        else:
            new = scores.argmax(dim=-1)
        if run.pad_id is not None:
            new = torch.where(unfinished, new, run.pad_id)  # a finished sequence only grows by padding
        if ids.shape[1] <= length:
            ids = grown(ids, length + 1, run.max_length, fill=0)
        ids[:, length] = new
        if run.eos is not None:
            unfinished &= ~torch.isin(new, run.eos)
        if run.stopped is not None and unfinished.any():
            rows = unfinished.nonzero().squeeze(1)
            unfinished[rows] = ~run.stopped(ids[rows, : length + 1])
        yield new, ids[:, : length + 1]
        if not unfinished.any():
            break


def _beam_search(run, return_trace):
    step = lambda ids: run.next_logits(ids, run.mask_upto(ids.shape[1]))
    s = run.settings
    return beam_search(
        step, run.reorder, run.process, run.ids, num_beams=s.num_beams, max_length=run.max_length,
        eos_ids=run.eos, fill_id=run.pad_id, length_penalty=s.length_penalty, early_stopping=s.early_stopping,
        num_return_sequences=s.num_return_sequences, do_sample=s.do_sample, generator=run.generator,
        stopped=run.stopped, return_trace=return_trace,
    )
