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
  token); positions then count real tokens only (mask.cumsum - 1), as Hugging Face's do.

With use_cache=True (the default) the model keeps every layer's keys and values (attention.KVCache)
and each step runs only the newest token; use_cache=False reruns the whole sequence each step and
gives the same tokens. Beyond Hugging Face: a model sees at most config.max_len tokens, so longer
sequences are cut to their newest max_len tokens (a sliding window, recomputed each step) with a
warning, where Hugging Face would fail. Used in the sampling and decoding notebooks.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from dataclasses import dataclass

import torch

from .beam_search import beam_search
from .errors import ConfigError, ShapeError, describe
from .logits import LogitsSettings, apply_repetition_penalty, apply_unchecked, logits_stages
from .masks import check_attention_mask
from .models.base import eval_mode
from .models.gpt import GPT, causal_positions_from_mask
from .models.gpt_step import GPTStep, can_step
from .models.seq2seq import Seq2SeqTransformer

DEFAULT_MAX_NEW_TOKENS = 20  # Hugging Face's GenerationConfig default (max_length=20), counted as new tokens
SAMPLING_ONLY = ("temperature", "top_k", "top_p", "min_p", "typical_p")


@dataclass
class GenerationSettings:
    """Every decoding knob of `generate` (see its docstring), checked on construction."""

    max_new_tokens: int | None = None
    max_length: int | None = None
    min_new_tokens: int = 0
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = 50
    top_p: float = 1.0
    min_p: float | None = None
    typical_p: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    num_beams: int = 1
    length_penalty: float = 1.0
    early_stopping: bool | str = False
    num_return_sequences: int = 1
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    use_cache: bool = True
    stop_strings: str | list[str] | None = None

    def __post_init__(self):
        for name in ("max_new_tokens", "max_length", "pad_token_id", "bos_token_id"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 0 if name.endswith("token_id") else 1)
        for name, minimum in (("min_new_tokens", 0), ("num_beams", 1), ("num_return_sequences", 1)):
            _check_int(name, getattr(self, name), minimum)
        for name in ("do_sample", "use_cache"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {describe(getattr(self, name))}")
        if not (isinstance(self.early_stopping, bool) or self.early_stopping == "never"):
            raise ConfigError(f"early_stopping must be True, False or 'never', got "
                              f"{describe(self.early_stopping)}")
        if not (_is_number(self.length_penalty) and math.isfinite(self.length_penalty)):
            raise ConfigError(f"length_penalty must be a finite number, got {describe(self.length_penalty)}")
        n, k = self.num_return_sequences, self.num_beams
        if k == 1 and n > 1 and not self.do_sample:
            raise ConfigError(f"num_return_sequences={n} needs do_sample=True or num_beams >= {n}: "
                              "greedy search has only one answer")
        if k > 1 and n > k:
            raise ConfigError(f"num_return_sequences={n} must be <= num_beams={k}: beam search returns "
                              "its best beams")
        for i in self.eos_ids or []:
            _check_int("eos_token_id", i, 0)
        if self.eos_ids == []:
            raise ConfigError("eos_token_id must be an id or a non-empty list of ids, got []")
        if not all(isinstance(s, str) and s for s in self.stop_list):
            raise ConfigError(f"stop_strings must be a non-empty string or a list of them, got "
                              f"{describe(self.stop_strings)}")
        ignored = {name: getattr(self, name) for name in SAMPLING_ONLY
                   if getattr(self, name) != getattr(GenerationSettings, name)}
        if ignored and not self.do_sample:
            warnings.warn(f"{ignored} only matter when sampling; with do_sample=False they are ignored",
                          stacklevel=4)
        self.logits_settings()  # checks the processors' settings (logits.py)

    @property
    def eos_ids(self) -> list[int] | None:
        eos = self.eos_token_id
        if eos is None or isinstance(eos, (list, tuple)):
            return None if eos is None else list(eos)
        if isinstance(eos, numbers.Integral) and not isinstance(eos, bool):
            return [eos]
        raise TypeError(f"eos_token_id must be an id, a list of ids or None, got {describe(eos)}")

    @property
    def stop_list(self) -> list[str]:
        return [self.stop_strings] if isinstance(self.stop_strings, str) else list(self.stop_strings or [])

    def logits_settings(self) -> LogitsSettings:
        """The processors' settings. Greedy search ignores the sampling-only ones, as Hugging Face does."""
        sampling = {name: getattr(self, name) for name in SAMPLING_ONLY} if self.do_sample else {}
        return LogitsSettings(repetition_penalty=self.repetition_penalty,
                              no_repeat_ngram_size=self.no_repeat_ngram_size, **sampling)


@dataclass
class GenerationOutput:
    """What `generate(..., return_dict=True)` returns."""

    sequences: torch.Tensor  # (B * n, T + new): each prompt followed by its new tokens
    sequences_scores: torch.Tensor | None = None  # beam search: (B * n,) sum log p / new ** length_penalty
    trace: list | None = None  # beam search with return_trace=True: see beam_search.record_step


def generate(
    model, input_ids=None, *, attention_mask=None, src_ids=None, src_mask=None,
    max_new_tokens=None, max_length=None, min_new_tokens=0, do_sample=False,
    temperature=1.0, top_k=50, top_p=1.0, min_p=None, typical_p=1.0, repetition_penalty=1.0,
    no_repeat_ngram_size=0, num_beams=1, length_penalty=1.0, early_stopping=False, num_return_sequences=1,
    eos_token_id=None, pad_token_id=None, bos_token_id=None, use_cache=True, stop_strings=None,
    tokenizer=None, generator=None, streamer=None, return_dict=False, return_trace=False,
):
    """Continue each prompt of input_ids (B, T); returns token ids (B * n, T + new), n = num_return_sequences.

    GPT: input_ids are the prompts, attention_mask (B, T) marks real tokens 1 and left padding 0.
    Seq2SeqTransformer: src_ids (B, S) and src_mask are the source; the decoder starts from
    bos_token_id (the "decoder start" token), or from input_ids if given, and the result is the
    decoder's sequence, start token included, as with Hugging Face encoder-decoder models.
    No input_ids (or T = 0): every sequence starts with bos_token_id.

    Length: max_new_tokens new tokens, or max_length tokens in all, prompt included (max_new_tokens
    wins when both are given); with neither, 20 new tokens, or fewer if the model's context ends first.
    Choice: greedy search; do_sample=True samples (generator=torch.Generator().manual_seed(0) makes it
    repeatable); num_beams > 1 runs beam search, ranked with length_penalty and stopped according
    to early_stopping (True, False or "never"; see beam_search.py).
    Processing (logits.py), in Hugging Face's order: repetition_penalty, no_repeat_ngram_size, then
    when sampling temperature, top_k, top_p, min_p, typical_p. top_k defaults to 50 when sampling,
    as in Hugging Face: pass top_k=0 to sample from the full distribution.
    Stopping: eos_token_id (an id or a list of ids); stop_strings (with tokenizer=) end a sequence
    once the text of its new tokens contains one, stop string included. Finished sequences are
    filled with pad_token_id, by default the first EOS id. min_new_tokens forbids EOS until then.
    num_return_sequences: sampling draws n continuations of each prompt; beam search returns its n best.
    streamer: an object with put(ids) and end(), like Hugging Face's TextStreamer; see also `stream`.
    return_dict=True: a GenerationOutput (with sequences_scores for beam search); return_trace=True
    (beam search) also records the whole search, for drawing the tree.
    """
    settings = GenerationSettings(
        max_new_tokens=max_new_tokens, max_length=max_length, min_new_tokens=min_new_tokens,
        do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
        typical_p=typical_p, repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size,
        num_beams=num_beams, length_penalty=length_penalty, early_stopping=early_stopping,
        num_return_sequences=num_return_sequences, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
        bos_token_id=bos_token_id, use_cache=use_cache, stop_strings=stop_strings,
    )
    if return_trace and num_beams == 1:
        raise ConfigError("return_trace=True records a beam search: it needs num_beams > 1, got num_beams=1")
    if streamer is not None and num_beams > 1:
        raise ConfigError(f"a streamer cannot follow beam search (num_beams={num_beams}): the best beam "
                          "is known only at the end")
    run = _Run(model, settings, input_ids, attention_mask, src_ids, src_mask, tokenizer, generator)
    scores = trace = None
    with eval_mode(model), torch.inference_mode():
        if num_beams > 1:
            sequences, scores, trace = _beam_search(run, return_trace)
        else:
            if streamer is not None:
                streamer.put(run.ids.cpu())
            for new_tokens, sequences in _decode_steps(run):  # noqa: B007 (the last one is the result)
                if streamer is not None:
                    streamer.put(new_tokens.cpu())
            if streamer is not None:
                streamer.end()
    sequences = sequences.clone()  # outside inference mode: an ordinary tensor for the caller
    if return_dict or return_trace:
        return GenerationOutput(sequences, None if scores is None else scores.clone(), trace)
    return sequences


def stream(model, input_ids, tokenizer=None, *, attention_mask=None, src_ids=None, src_mask=None,
           generator=None, **settings):
    """Yield each new token as soon as it is chosen: its id, or with a tokenizer its text.

    One sequence (batch size 1), greedy or sampling; `settings` are generate's keyword arguments,
    and the tokens are the ones `generate` returns. input_ids may be a string when a tokenizer is
    given. Text comes in whole characters: a token that ends inside a multi-byte character is held
    back until the character is complete. Beam search cannot be streamed: its best sequence is
    known only at the end. The model stays in eval mode until the stream ends or is closed.
    """
    input_ids = _encode(input_ids, tokenizer)
    settings = GenerationSettings(**settings)
    if settings.num_beams > 1:
        raise ConfigError(f"stream cannot follow beam search (num_beams={settings.num_beams}): the best "
                          "beam is known only at the end; use generate(..., num_beams=...)")
    run = _Run(model, settings, input_ids, attention_mask, src_ids, src_mask, tokenizer, generator)
    if run.ids.shape[0] != 1:
        raise ShapeError(f"stream follows one sequence: it needs batch size 1 and num_return_sequences=1, "
                         f"got {run.ids.shape[0]} sequences")
    new_ids, shown = [], ""
    with eval_mode(model):
        for new_tokens, _ in _decode_steps(run):
            if tokenizer is None:
                yield int(new_tokens[0])
                continue
            new_ids.append(int(new_tokens[0]))
            text = tokenizer.decode(new_ids, skip_special_tokens=True)
            if len(text) > len(shown) and not text.endswith("\ufffd"):  # "\ufffd": half a character so far
                yield text[len(shown) :]
                shown = text
    if tokenizer is not None:
        text = tokenizer.decode(new_ids, skip_special_tokens=True)
        if len(text) > len(shown):
            yield text[len(shown) :]


def next_token_distribution(
    model, input_ids, tokenizer=None, top=10, *, src_ids=None, src_mask=None, temperature=1.0, top_k=50,
    top_p=1.0, min_p=None, typical_p=1.0, repetition_penalty=1.0, no_repeat_ngram_size=0,
):
    """The next token's distribution after each processing stage, for one prompt: a teaching view.

    input_ids: (1, T), or a string with a tokenizer (Seq2Seq: the decoder's tokens so far, with
    src_ids the source). Returns {"settings": LogitsSettings, "stages": [stage, ...]}, one stage per
    active step of `logits.logits_stages`, in order: "raw", "repetition penalty", "no-repeat n-gram",
    "temperature", "top-k", "top-p", "min-p", "typical". Each stage is
        {"name": str, "probs": (V,) tensor, "n_kept": number of tokens with probability > 0,
         "top_ids": the `top` most likely ids, "top_probs": their probabilities, "top_tokens": their text}
    ("top_tokens" only with a tokenizer). The last stage is what `generate(do_sample=True)` samples from.
    """
    _check_int("top", top, 1)
    settings = GenerationSettings(
        do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, typical_p=typical_p,
        repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size,
    )
    run = _Run(model, settings, _encode(input_ids, tokenizer), None, src_ids, src_mask, tokenizer, None)
    if run.ids.shape[0] != 1:
        raise ShapeError(f"next_token_distribution looks at one prompt: input_ids must be (1, T), "
                         f"got {tuple(run.ids.shape)}")
    with eval_mode(model), torch.inference_mode():
        logits = run.next_logits(run.ids, None)  # (1, V)
        _check_model_output(logits, run.ids.shape[1])
        stages = logits_stages(logits, run.ids, run.logits_settings, do_sample=True)
    result = []
    for name, scores in stages:
        probs = scores.softmax(dim=-1)[0]  # (V,); outside inference mode: an ordinary tensor
        best = probs.topk(min(top, probs.numel()))
        stage = {"name": name, "probs": probs, "n_kept": int((probs > 0).sum()),
                 "top_ids": best.indices.tolist(), "top_probs": best.values.tolist()}
        if tokenizer is not None:
            stage["top_tokens"] = [tokenizer.decode([i]) for i in stage["top_ids"]]
        result.append(stage)
    return {"settings": run.logits_settings, "stages": result}


# ----------------------------------------------------------------------------- the decoding loops


@torch.inference_mode()  # on a generator function, torch enters the mode around each step only
def _decode_steps(run):
    """Greedy search or sampling, one token per iteration: yields (new ids (B,), all ids so far (B, L))."""
    B, T = run.ids.shape
    ids = run.ids.new_full((B, run.max_length), 0 if run.pad_id is None else run.pad_id)
    ids[:, :T] = run.ids  # allocated once: each step writes one column
    mask = run.full_mask()
    unfinished = torch.ones(B, dtype=torch.bool, device=ids.device)
    for length in range(T, run.max_length):
        logits = run.next_logits(ids[:, :length], None if mask is None else mask[:, :length])  # (B, V)
        scores = run.process(logits, ids[:, :length], length - T)
        if run.settings.do_sample:
            new = torch.multinomial(scores.softmax(dim=-1), 1, generator=run.generator).squeeze(1)  # (B,)
        else:
            new = scores.argmax(dim=-1)
        if run.pad_id is not None:
            new = torch.where(unfinished, new, run.pad_id)  # a finished sequence only grows by padding
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
    mask = run.full_mask()
    step = lambda ids: run.next_logits(ids, None if mask is None else mask[:, : ids.shape[1]])
    s = run.settings
    return beam_search(
        step, run.reorder, run.process, run.ids, num_beams=s.num_beams, max_length=run.max_length,
        eos_ids=run.eos, fill_id=run.pad_id, length_penalty=s.length_penalty, early_stopping=s.early_stopping,
        num_return_sequences=s.num_return_sequences, do_sample=s.do_sample, generator=run.generator,
        stopped=run.stopped, return_trace=return_trace,
    )


class _Run:
    """One generation call: checked inputs, the model seen as "ids -> next-token logits", the processors."""

    def __init__(self, model, settings, input_ids, attention_mask, src_ids, src_mask, tokenizer, generator):
        if not isinstance(model, (GPT, Seq2SeqTransformer)):
            raise TypeError(f"model must be a GPT or a Seq2SeqTransformer (a model that predicts the next "
                            f"token), got {describe(model)}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {describe(generator)}")
        s = self.settings = settings
        self.model, self.generator = model, generator
        self.is_seq2seq = isinstance(model, Seq2SeqTransformer)
        vocab = model.config.vocab_size
        for name, ids in (("eos_token_id", s.eos_ids), ("pad_token_id", [s.pad_token_id]),
                          ("bos_token_id", [s.bos_token_id])):
            for i in ids or []:
                if i is not None and i >= vocab:
                    raise ConfigError(f"{name}={i} is outside the vocabulary: ids go from 0 to {vocab - 1}")
        self.pad_id = s.pad_token_id if s.pad_token_id is not None else (s.eos_ids or [None])[0]
        ids, mask, src_ids, src_mask = self._inputs(input_ids, attention_mask, src_ids, src_mask)
        self.max_length = self._max_length(ids.shape[1])
        context = model.config.max_len
        if self.max_length - 1 > context:  # (the last new token is never fed back)
            warnings.warn(f"prompt and new tokens can reach {self.max_length - 1} tokens, more than the model's "
                          f"context max_len={context}: beyond it the model sees only the newest {context}",
                          stacklevel=3)
        self.eos = None if s.eos_ids is None else torch.tensor(s.eos_ids, device=ids.device)
        self.stopped = None
        if s.stop_strings is not None:
            if tokenizer is None:
                raise ConfigError("stop_strings need tokenizer= to turn the new tokens into text")
            self.stopped = _StopStrings(s.stop_list, tokenizer, ids.shape[1])

        # Every prompt repeated n times, in adjacent rows: n samples, or n = num_beams beams.
        n = max(s.num_beams, s.num_return_sequences)
        repeat = lambda x: None if x is None else x.repeat_interleave(n, dim=0)
        self.ids, self.mask = repeat(ids), repeat(mask)
        self.src_ids, self.src_mask = repeat(src_ids), repeat(src_mask)
        if self.stopped is not None and self.pad_id is None and self.ids.shape[0] > 1:
            raise ConfigError("stop_strings with several sequences need pad_token_id (or eos_token_id) to "
                              "fill the sequences that stop first")
        self.memory = None  # the encoder's output (Seq2Seq), computed by the first step
        self.cache = self.step = None
        if s.use_cache:
            self.cache = model.new_cache(src_ids.shape[1]) if self.is_seq2seq else model.new_cache()
        self.can_step = s.use_cache and not self.is_seq2seq and can_step(model)

        self.logits_settings, self.penalty, self.first_real = s.logits_settings(), None, None
        if self.mask is not None and s.repetition_penalty != 1.0:
            # Hugging Face's repetition penalty skips the left padding: `process` applies it itself.
            self.penalty, self.first_real = s.repetition_penalty, self.mask.long().argmax(dim=1)  # (B,)
            self.logits_settings = dataclasses.replace(self.logits_settings, repetition_penalty=1.0)
        # Beam sampling keeps one token more than there are EOS ids, so that a beam can always go on.
        self.min_tokens_to_keep = 1 + len(s.eos_ids or [None]) if s.num_beams > 1 else 1

    def _inputs(self, input_ids, attention_mask, src_ids, src_mask):
        s, model = self.settings, self.model
        batch = 1
        if self.is_seq2seq:
            if src_ids is None:
                raise ConfigError("a Seq2SeqTransformer generates from a source: pass src_ids=(B, S) token "
                                  "ids (input_ids, if given, is the start of the decoder's output)")
            model._check_ids(src_ids, "src_ids")
            if src_mask is not None:
                check_attention_mask(src_mask, *src_ids.shape)
            if attention_mask is not None:
                raise ConfigError("attention_mask is for GPT prompts; a Seq2SeqTransformer's source mask "
                                  "is src_mask")
            batch = src_ids.shape[0]
        elif src_ids is not None or src_mask is not None:
            raise ConfigError("src_ids and src_mask are for a Seq2SeqTransformer; a GPT continues input_ids")
        if input_ids is not None:
            _check_ids(input_ids, model.config.vocab_size)
            batch = input_ids.shape[0]
        if input_ids is None or input_ids.shape[1] == 0:
            if s.bos_token_id is None:
                first = "the decoder's start token" if self.is_seq2seq else "the first token"
                raise ConfigError(f"input_ids is empty: pass a prompt, or bos_token_id ({first})")
            device = src_ids.device if src_ids is not None else None
            input_ids, attention_mask = torch.full((batch, 1), s.bos_token_id, device=device), None
        if self.is_seq2seq and input_ids.shape[0] != batch:
            raise ShapeError(f"input_ids (the decoder's start) has {input_ids.shape[0]} rows, "
                             f"src_ids {batch}")
        if attention_mask is not None:
            check_attention_mask(attention_mask, *input_ids.shape)
            if not attention_mask.bool().any(dim=1).all():
                raise ValueError("attention_mask has a row of zeros: every prompt needs a real token")
        elif s.pad_token_id is not None and s.pad_token_id not in (s.eos_ids or []) and not self.is_seq2seq:
            # Like Hugging Face: without a mask, pad_token_id marks the padding (unless it is also EOS).
            attention_mask = (input_ids != s.pad_token_id).long()
        if attention_mask is not None and attention_mask.bool().all():
            attention_mask = None  # no padding: the model's plain causal path is faster
        return input_ids, attention_mask, src_ids, src_mask

    def _max_length(self, prompt_length):
        s, context = self.settings, self.model.config.max_len
        if s.max_new_tokens is not None:
            return prompt_length + s.max_new_tokens
        if s.max_length is not None:
            if s.max_length <= prompt_length:
                raise ConfigError(f"max_length={s.max_length} counts the prompt too, and the prompt already "
                                  f"has {prompt_length} tokens; max_new_tokens sets how many tokens to add")
            return s.max_length
        if prompt_length >= context:  # the sliding window takes over from the first step
            return prompt_length + DEFAULT_MAX_NEW_TOKENS
        return min(prompt_length + DEFAULT_MAX_NEW_TOKENS, context)  # as Hugging Face: within the context

    def full_mask(self):
        """(B, max_length): the prompts' attention mask, then 1 for every new token (None: no padding)."""
        if self.mask is None:
            return None
        mask = self.mask.new_ones((self.mask.shape[0], self.max_length))
        mask[:, : self.mask.shape[1]] = self.mask
        return mask

    def next_logits(self, ids, mask):
        """ids (B, L): all tokens so far; mask (B, L) or None -> logits (B, V) for token L + 1."""
        context = self.model.config.max_len
        if ids.shape[1] > context:  # the model cannot see more: keep the newest tokens, recompute them
            ids, mask, self.cache = ids[:, -context:], None if mask is None else mask[:, -context:], None
        past = self.cache.length if self.cache is not None else 0
        new = ids[:, past:]  # what the cache has not seen
        positions = None if mask is None else causal_positions_from_mask(mask)[:, -new.shape[1] :]
        if self.is_seq2seq:
            if self.memory is None:
                self.memory = self.model.encode(self.src_ids, self.src_mask)  # (B, S, C), once
            logits = self.model.decode(new, self.memory, self.src_mask, cache=self.cache,
                                       position_ids=positions)[:, -1]
        elif past and new.shape[1] == 1 and self.can_step:  # one new token: the fast path
            if self.step is None:  # built at the first new token: a single forward never needs it
                self.step = GPTStep(self.model)  # one token at a time without module overhead (gpt_step.py)
            if positions is None:
                positions = torch.full((1, 1), past, device=new.device)  # (1, 1)
            logits = self.step(new, positions, mask, self.cache)
        else:
            logits = self.model(new, mask, position_ids=positions, cache=self.cache)[:, -1]
        return logits.float()  # (B, V)

    def reorder(self, index):
        """Beam search: cache row i becomes old row index[i] (a prompt's beams share its source, so the
        encoder's memory needs no reordering)."""
        if self.cache is not None:
            self.cache.reorder(index)

    def process(self, scores, ids, n_new):
        """scores (B, V), ids (B, L) -> scores after Hugging Face's processors, in its order."""
        logits = scores
        if n_new < self.settings.min_new_tokens and self.eos is not None:
            scores = scores.index_fill(-1, self.eos, -math.inf)  # too early to stop
        if self.penalty is not None:
            # A token is penalised once however often it occurs, so writing the row's first real token
            # over its padding leaves the padding out.
            first = ids.gather(1, self.first_real[:, None])  # (B, 1)
            padding = torch.arange(ids.shape[1], device=ids.device) < self.first_real[:, None]  # (B, L)
            scores = apply_repetition_penalty(scores, torch.where(padding, first, ids), self.penalty)
        # The settings were checked when the run began; a NaN in the logits shows up just below.
        scores = apply_unchecked(scores, ids, self.logits_settings, self.settings.do_sample,
                                 self.min_tokens_to_keep)
        best = scores.max(dim=-1).values  # +inf or NaN anywhere, or no token left, shows up here
        if not torch.isfinite(best).all():  # one check per step; find out which it was only when it fails
            _check_model_output(logits, ids.shape[1])
            s = self.settings
            raise ValueError(
                f"the next-token scores overflowed to inf/NaN after the logits processors (temperature="
                f"{s.temperature}, repetition_penalty={s.repetition_penalty}); such extreme settings "
                "exceed float32's range: use values closer to 1"
            )
        return scores


class _StopStrings:
    """ids (N, L) -> bool (N,): True where the text of the new tokens contains a stop string."""

    def __init__(self, strings, tokenizer, prompt_length):
        self.strings, self.tokenizer, self.prompt_length = strings, tokenizer, prompt_length

    def __call__(self, ids):
        texts = [self.tokenizer.decode(row[self.prompt_length :].tolist()) for row in ids]
        return torch.tensor([any(s in text for s in self.strings) for text in texts], device=ids.device)


def _check_model_output(logits, length):
    if torch.isnan(logits).any():
        raise ValueError(f"the model produced NaN logits at sequence length {length}: check its "
                         "weights (did training diverge?) and its inputs")


def _encode(input_ids, tokenizer):
    if not isinstance(input_ids, str):
        return input_ids
    if tokenizer is None:
        raise TypeError("input_ids is a string: pass tokenizer= to encode it, or pass token ids")
    return torch.tensor([tokenizer.encode(input_ids)])


def _check_ids(ids, vocab):
    integer = isinstance(ids, torch.Tensor) and not (ids.is_floating_point() or ids.is_complex())
    if not integer or ids.dtype == torch.bool:
        raise TypeError(f"input_ids must be an integer tensor of token ids (torch.long), got {describe(ids)}")
    if ids.dim() != 2:
        hint = "; for one sequence use input_ids[None]" if ids.dim() == 1 else ""
        raise ShapeError(f"input_ids must have shape (batch, seq_len), got {tuple(ids.shape)}{hint}")
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab):
        raise ValueError(f"input_ids must be token ids in [0, {vocab - 1}], got values from {int(ids.min())} "
                         f"to {int(ids.max())}")


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_int(name, value, minimum):
    if not (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum):
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {describe(value)}")
