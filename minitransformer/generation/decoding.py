"""One generation call, prepared: checked inputs, the model seen as "ids -> next-token scores".

`Decoding` knows no model class: it talks to the model through the decoding interface of
models/base.py (`source_inputs`, `new_cache`, `next_token_logits`), so a new model family needs no
change here. It also applies the logits processors (logits.py) with Hugging Face's special cases.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from functools import partial

import torch

from .. import checks
from ..errors import ConfigError, ShapeError, describe
from ..logits import apply_repetition_penalty, stages
from ..masks import positions_from_mask
from .constraints import check_constraint, constrain, only_dead_beams
from .memory import check_rows_fit

DEFAULT_MAX_NEW_TOKENS = 20  # Hugging Face's GenerationConfig default (max_length=20), counted as new tokens


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """Run without dropout (generation, explorers), then put the model back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class Decoding:
    """The state of one generate/stream call. Build it in eval mode (the cache picks its fast path then)."""

    def __init__(self, model, settings, input_ids, attention_mask, src_ids, src_mask, tokenizer, generator,
                 prefix_allowed_tokens_fn=None):
        _check_model_and_generator(model, generator)
        check_constraint(prefix_allowed_tokens_fn)
        self.constraint = prefix_allowed_tokens_fn
        s = self.settings = settings
        self.model, self.generator = model, generator
        _check_special_ids(s, model.config.vocab_size)
        self.pad_id = s.pad_token_id if s.pad_token_id is not None else (s.eos_ids or [None])[0]
        source = model.source_inputs(src_ids=src_ids, src_mask=src_mask)
        ids, mask = self._prompt(input_ids, attention_mask, src_ids, has_source=bool(source))
        check_rows_fit(model, s, ids.shape[0], ids.device)  # before any row is allocated
        self.max_length = self._max_length(ids.shape[1])
        self.eos = None if s.eos_ids is None else torch.tensor(s.eos_ids, device=ids.device)
        self.stopped = _StopStrings(s.stop_list, tokenizer, ids.shape[1]) if s.stop_strings is not None else None
        # Every prompt repeated n times, in adjacent rows: n samples, or n = num_beams beams.
        n = self.rows_per_prompt = max(s.num_beams, s.num_return_sequences)
        repeat = lambda x: None if x is None else x.repeat_interleave(n, dim=0)
        self.ids, self.mask = repeat(ids), repeat(mask)
        self._grown_mask = self.mask  # the mask with 1s for new tokens, grown by `mask_upto`
        self.source = {name: repeat(x) for name, x in source.items()}
        if self.stopped is not None and self.pad_id is None and self.ids.shape[0] > 1:
            raise ConfigError("stop_strings with several sequences need pad_token_id (or eos_token_id) to "
                              "fill the sequences that stop first")
        self.cache = model.new_cache() if s.use_cache else None
        self.recorder = None  # an outputs.Recorder when the caller asked for scores or attentions
        # Beam sampling keeps one token more than there are EOS ids, so that a beam can always go on.
        self.min_tokens_to_keep = 1 + len(s.eos_ids or [None]) if s.num_beams > 1 else 1
        # Hugging Face's repetition penalty skips left padding: `process` applies it itself then.
        self.skip_padding = self.mask is not None and s.repetition_penalty != 1.0
        self.logits_settings = dataclasses.replace(s, repetition_penalty=1.0) if self.skip_padding else s

    def _prompt(self, input_ids, attention_mask, src_ids, has_source):
        """The checked prompt (B, T) and its attention mask, or None when nothing is padded."""
        s = self.settings
        batch = src_ids.shape[0] if src_ids is not None else 1
        _refuse_meta("input_ids", input_ids)
        _refuse_meta("attention_mask", attention_mask)
        if input_ids is not None:
            checks.token_ids("input_ids", input_ids, self.model.config.vocab_size)
            input_ids = _on_model_device(input_ids.long(), self.model)  # any integer dtype: ids are ids
            if src_ids is not None and input_ids.shape[0] != batch:
                raise ShapeError(f"input_ids (the decoder's start) has {input_ids.shape[0]} rows, src_ids {batch}")
            batch = input_ids.shape[0]
        if input_ids is None or input_ids.shape[1] == 0:
            if s.bos_token_id is None:
                raise ConfigError("input_ids is empty: pass a prompt, or bos_token_id (the first token; for a "
                                  "Seq2SeqTransformer, the decoder's start token)")
            device = src_ids.device if src_ids is not None else None
            input_ids, attention_mask = torch.full((batch, 1), s.bos_token_id, device=device), None
        if attention_mask is not None:
            checks.attention_mask("attention_mask", attention_mask, *input_ids.shape)
            if not attention_mask.bool().any(dim=1).all():
                raise ValueError("attention_mask has a row of zeros: every prompt needs a real token")
            _warn_if_right_padded(attention_mask, "attention_mask")
        elif s.pad_token_id is not None and s.pad_token_id not in (s.eos_ids or []) and not has_source:
            # Like Hugging Face: a prompt without a mask marks its padding with pad_token_id (unless it
            # is also EOS); a decoder start token is no prompt.
            attention_mask = (input_ids != s.pad_token_id).long()
            _warn_if_right_padded(attention_mask, f"the attention mask inferred from pad_token_id={s.pad_token_id}")
        if attention_mask is not None and attention_mask.bool().all():
            attention_mask = None  # no padding: the model's plain causal path is faster
        return input_ids, attention_mask

    def _max_length(self, prompt_length):
        s, context = self.settings, self.model.config.max_len
        if s.max_new_tokens is not None:
            length = prompt_length + s.max_new_tokens
        elif s.max_length is not None:
            if s.max_length <= prompt_length:
                raise ConfigError(f"max_length={s.max_length} counts the prompt too, and the prompt already "
                                  f"has {prompt_length} tokens; max_new_tokens sets how many tokens to add")
            length = s.max_length
        elif prompt_length >= context:  # the sliding window takes over from the first step
            length = prompt_length + DEFAULT_MAX_NEW_TOKENS
        else:
            length = min(prompt_length + DEFAULT_MAX_NEW_TOKENS, context)  # as Hugging Face: within the context
        if length - 1 > context:  # (the last new token is never fed back)
            warnings.warn(f"prompt and new tokens can reach {length - 1} tokens, more than the model's context "
                          f"max_len={context}: beyond it the model sees only the newest {context}", stacklevel=4)
        return length

    def mask_upto(self, length):
        """(B, length): the prompts' attention mask, then 1 for every new token (None: no padding)."""
        if self.mask is None:
            return None
        if self._grown_mask.shape[1] < length:
            self._grown_mask = grown(self._grown_mask, length, self.max_length, fill=1)
        return self._grown_mask[:, :length]

    def next_logits(self, ids, mask):
        """ids (B, L): all tokens so far; mask (B, L) or None -> logits (B, V) for token L + 1."""
        context = self.model.config.max_len
        if ids.shape[1] > context:  # the model cannot see more: keep the newest tokens, recompute them
            ids, mask, self.cache = ids[:, -context:], None if mask is None else mask[:, -context:], None
        new = ids[:, self.cache.length if self.cache is not None else 0 :]  # what the cache has not seen
        positions = None if mask is None else positions_from_mask(mask)[:, -new.shape[1] :]
        record = self.recorder is not None and self.recorder.attentions is not None
        out = self.model.next_token_logits(new, cache=self.cache, attention_mask=mask, position_ids=positions,
                                           **self.source, **({"return_attention": True} if record else {}))
        logits, attentions = out if record else (out, None)
        if self.recorder is not None:
            self.recorder.step(logits, attentions)
        return logits.float()  # (B, V)

    def reorder(self, index):
        """Beam search: cache row i becomes old row index[i] (a prompt's beams share its source)."""
        if self.cache is not None:
            self.cache.reorder(index)

    def process(self, scores, ids, n_new):
        """scores (B, V), ids (B, L) -> scores after Hugging Face's processors, in its order."""
        logits = scores
        for _, stage in self._processors(ids, n_new):
            scores = stage(scores)  # unchecked: the settings checked themselves when built
        if scores is logits:
            scores = logits.clone()
        best = scores.amax(dim=-1)  # (B,); 9 µs at GPT-2's 50,257 scores, where max(dim=-1) took 53
        if not torch.isfinite(best).all() and not only_dead_beams(best, self.settings.num_beams):
            self._explain_failure(logits, ids, n_new)  # +inf, NaN or no token left; the diagnosis only then
        if self.recorder is not None:
            self.recorder.processed(scores)
        return scores

    def _processors(self, ids, n_new):
        """[(name, function of scores)]: the EOS ban, the repetition penalty without padding, logits.stages,
        and the prefix constraint between logits' processors and its warpers (where Hugging Face puts it)."""
        s, plan = self.settings, []
        if n_new < s.min_new_tokens and self.eos is not None:
            plan.append(("min_new_tokens", lambda x: x.index_fill(-1, self.eos, -math.inf)))  # too early to stop
        if self.skip_padding:
            plan.append(("repetition penalty", partial(apply_repetition_penalty.__wrapped__,
                                                       input_ids=self._without_padding(ids),
                                                       penalty=s.repetition_penalty)))
        chain = stages(self.logits_settings, ids, s.do_sample, self.min_tokens_to_keep)
        if self.constraint is None:
            return plan + chain
        n_processors = len(stages(self.logits_settings, ids, do_sample=False))  # the warpers come after these
        fence = partial(constrain, input_ids=ids, fn=self.constraint, rows_per_prompt=self.rows_per_prompt)
        return plan + chain[:n_processors] + [("prefix_allowed_tokens_fn", fence)] + chain[n_processors:]

    def _explain_failure(self, logits, ids, n_new):
        """Rerun the processors one by one and raise an error that names the one that broke the scores."""
        check_model_output(logits, ids.shape[1])
        scores = logits
        for name, stage in [("the model", lambda x: x), *self._processors(ids, n_new)]:
            scores = stage(scores)
            best = scores.max(dim=-1).values  # (B,)
            if not torch.isfinite(best).all():
                raise ValueError(_failure_message(name, self.settings, ids.shape[1], int(logits.shape[-1]),
                                                  no_token_left=bool((best == -math.inf).any())))

    def _without_padding(self, ids):
        """ids with each row's left padding overwritten by its first real token: a token is penalised
        once however often it occurs, so this leaves the padding out of the penalty."""
        first_real = self.mask.long().argmax(dim=1)[:, None]  # (B, 1)
        padding = torch.arange(ids.shape[1], device=ids.device) < first_real  # (B, L)
        return torch.where(padding, ids.gather(1, first_real), ids)


class _StopStrings:
    """ids (N, L) -> bool (N,): True where the text of the new tokens contains a stop string."""

    def __init__(self, strings, tokenizer, prompt_length):
        if tokenizer is None:
            raise ConfigError("stop_strings need tokenizer= to turn the new tokens into text")
        self.strings, self.tokenizer, self.prompt_length = strings, tokenizer, prompt_length

    def __call__(self, ids):
        texts = [self.tokenizer.decode(row[self.prompt_length :].tolist()) for row in ids]
        return torch.tensor([any(s in text for s in self.strings) for text in texts], device=ids.device)


def _check_model_and_generator(model, generator):
    if not hasattr(model, "next_token_logits"):
        raise TypeError(f"model must predict the next token (a GPT or a Seq2SeqTransformer), got {describe(model)}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {describe(generator)}")


def _check_special_ids(s, vocab):
    for name, ids in (("eos_token_id", s.eos_ids), ("pad_token_id", [s.pad_token_id]),
                      ("bos_token_id", [s.bos_token_id])):
        for i in ids or []:
            if i is not None and i >= vocab:
                raise ConfigError(f"{name}={i} is outside the vocabulary: ids go from 0 to {vocab - 1}")


def check_model_output(logits, length):
    if torch.isnan(logits).any():
        raise ValueError(f"the model produced NaN logits at sequence length {length}: check its "
                         "weights (did training diverge?) and its inputs")


def _failure_message(stage, s, length, vocab, no_token_left):
    """Why no token can be chosen at sequence length `length`, said in terms of the setting to blame."""
    if stage == "no-repeat n-gram":
        return (f"no_repeat_ngram_size={s.no_repeat_ngram_size} bans every token at sequence length {length}: "
                f"each of the {vocab} tokens of the vocabulary would repeat a {s.no_repeat_ngram_size}-gram "
                "already in the sequence. Use a larger no_repeat_ngram_size, fewer new tokens, or 0 to turn "
                "the ban off")
    if stage == "prefix_allowed_tokens_fn":
        return (f"prefix_allowed_tokens_fn allows only tokens that are already impossible at sequence length "
                f"{length} in some rows (banned by no_repeat_ngram_size={s.no_repeat_ngram_size}, "
                f"repetition_penalty={s.repetition_penalty} or min_new_tokens={s.min_new_tokens}, or given "
                "probability 0 by the model): allow other tokens there, or relax those settings")
    if stage == "min_new_tokens":
        return (f"min_new_tokens={s.min_new_tokens} forbids the EOS ids {s.eos_ids} at sequence length {length}, "
                "and the model gives every other token probability 0")
    if stage == "the model":
        return f"the model's logits at sequence length {length} are all -inf, or +inf: check its weights"
    problem = "removed every token" if no_token_left else "overflowed to inf/NaN"
    return (f"the next-token scores {problem} at the {stage} stage (temperature={s.temperature}, "
            f"repetition_penalty={s.repetition_penalty}); such extreme settings exceed float32's range: "
            "use values closer to 1")


def _refuse_meta(name, x):
    if isinstance(x, torch.Tensor) and x.device.type == "meta":
        raise ValueError(f"{name} is on the meta device: a tensor with a shape but no values, which cannot "
                         "be decoded; create it on the model's device (e.g. 'cpu')")


def _on_model_device(ids, model):
    param = next(model.parameters(), None) if hasattr(model, "parameters") else None
    if param is None or param.device == ids.device:
        return ids
    if param.device.type == "meta":
        raise ValueError(f"input_ids is on {ids.device}, the model on meta: its weights have no values yet; "
                         "load them (model.to_empty(device=...) then a checkpoint) before generating")
    raise ValueError(f"input_ids is on {ids.device}, the model on {param.device}: move the ids with "
                     f"input_ids.to({str(param.device)!r})")


def _warn_if_right_padded(mask, source):
    """Hugging Face warns too: generation appends after the last column, so it would follow the padding."""
    gaps = mask[:, :-1].bool() & ~mask[:, 1:].bool()  # (B, T-1): a real token followed by padding
    if gaps.any():
        row = int(gaps.any(dim=1).nonzero()[0])
        warnings.warn(f"right-padding was detected: row {row} of {source} has padding (0) after a real token "
                      "(1), and new tokens would follow the padding. For correct results pad prompts on the "
                      "left (a tokenizer's padding_side='left')", stacklevel=5)


def grown(buffer, needed, limit, fill):
    """buffer (B, L) -> (B, L') with needed <= L' <= limit, new columns = fill.

    At least doubling: copying costs O(1) per column on average, and nothing is reserved for a
    max_length that EOS may never let the sequences reach."""
    width = min(limit, max(needed, 2 * buffer.shape[1]))
    out = buffer.new_full((buffer.shape[0], width), fill)
    out[:, : buffer.shape[1]] = buffer
    return out
