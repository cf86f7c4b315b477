"""Assisted greedy decoding: a cheap assistant drafts tokens, the model checks all of them in one pass.

    generate(model, ids, assistant_model=draft, max_new_tokens=200)   # Hugging Face's keyword

One greedy step of a large model reads all of its weights to choose one token. Here `assistant_model` (a
bfloat16 copy of the model, or a smaller model with the same vocabulary) first proposes
`num_assistant_tokens` tokens, one cheap step each; then the model scores the prompt's unseen tokens and
every proposal in one forward pass (reading its weights once for them all) and keeps the proposals up to
the first one it would not have chosen, plus its own choice there:

    ids ... x | d1 d2 d3 d4      the assistant's drafts
    model:      p0 p1 p2 p3 p4   the model's argmax after x, d1, d2, d3, d4
    d1 == p0, d2 == p1, d3 != p2  ->  keep d1 d2 p2: three tokens for one pass of the model

Every kept token is the model's own argmax after the tokens before it, so the result is the model's
greedy output, token for token (up to float32 rounding between a one-token and a many-token pass);
the assistant decides only how fast it comes. This is Hugging Face's assisted generation (Leviathan et
al. 2023, "Fast Inference from Transformers via Speculative Decoding", arXiv:2211.17192, greedy case).
Greedy search only, one prompt, a decoder-only model; the logits processors apply to both models.
"""

from __future__ import annotations

import torch

from ..errors import AssistantError, describe
from .decoding import eval_mode


def check_assistant(run, assistant) -> None:
    """Assisted decoding needs greedy search on one prompt of a decoder-only model, within its context."""
    s, model = run.settings, run.model
    why = None
    if s.do_sample or s.num_beams > 1:
        why = f"greedy search (do_sample=False, num_beams=1), got do_sample={s.do_sample}, "
        why += f"num_beams={s.num_beams}"
    elif run.ids.shape[0] != 1:
        why = f"one prompt at a time, got {run.ids.shape[0]}"
    elif run.source or not callable(getattr(assistant, "new_cache", None)):
        why = f"decoder-only models (GPT), got {type(model).__name__} and {describe(assistant)}"
    elif assistant.config.vocab_size != model.config.vocab_size:
        why = f"the same vocabulary: its vocab_size is {assistant.config.vocab_size}, the model's "
        why += f"{model.config.vocab_size}"
    elif run.max_length - 1 > min(model.config.max_len, assistant.config.max_len):
        why = f"prompt and new tokens within both contexts (max_len {model.config.max_len} and "
        why += f"{assistant.config.max_len}), got {run.max_length - 1}"
    elif not s.use_cache:
        why = "use_cache=True: the drafts are checked against the model's KV cache"
    elif run.recorder is not None:
        why = "no per-step record: output_scores, output_logits and output_attentions must be False"
    if why:
        raise AssistantError(f"assistant_model: assisted generation needs {why}")


def assisted_greedy(run, assistant, streamer=None) -> torch.Tensor:
    """Greedy decoding of run.model, with `assistant`'s drafts (in eval mode): -> ids (1, prompt + new)."""
    check_assistant(run, assistant)
    with eval_mode(assistant), torch.inference_mode():
        return _decode(run, assistant, streamer)


def _decode(run, assistant, streamer) -> torch.Tensor:
    model, ids, prompt = run.model, run.ids, run.ids.shape[1]
    cache, draft_cache = model.new_cache(), assistant.new_cache()
    run.drafted = run.accepted = run.checks = 0  # drafts proposed, drafts kept, model passes (benchmarks)
    if streamer is not None:
        streamer.put(ids.cpu())  # as in loop.py: the prompt (1, T), then each new token (1,)
    while ids.shape[1] < run.max_length:
        k = min(run.settings.num_assistant_tokens, run.max_length - ids.shape[1] - 1)
        drafts = _draft(run, assistant, draft_cache, ids, k, prompt)  # (1, k)
        logits = model(torch.cat([ids[:, cache.length :], drafts], 1), cache=cache)[0, -(k + 1) :]  # (k+1, V)
        new, done = _check(run, ids, drafts, logits, prompt)
        run.drafted, run.accepted, run.checks = run.drafted + k, run.accepted + new.shape[1] - 1, run.checks + 1
        cache.crop(ids.shape[1] + new.shape[1] - 1)  # the kept drafts stay cached; the rejected ones go
        draft_cache.crop(min(draft_cache.length, cache.length))
        ids = torch.cat([ids, new], 1)
        for token in new.cpu().unbind(1) if streamer is not None else ():
            streamer.put(token)
        if done:
            break
    if streamer is not None:
        streamer.end()
    return ids


def _draft(run, assistant, cache, ids, k: int, prompt: int) -> torch.Tensor:
    """The assistant's k greedy tokens after ids, its cache filled as it goes: (1, k)."""
    draft = ids
    for _ in range(k):
        logits = assistant.next_token_logits(draft[:, cache.length :], cache=cache)  # (1, V)
        choice = run.process(logits.float(), draft, draft.shape[1] - prompt).argmax(-1, keepdim=True)
        draft = torch.cat([draft, choice], 1)
    return draft[:, ids.shape[1] :]


def _check(run, ids, drafts, logits, prompt: int):
    """The model's choices after ids and after each kept draft: (1, n) new ids, and whether EOS or a stop
    string ended the sequence. logits: (k + 1, V), the model's scores after ids[-1], d1, ..., dk."""
    kept = ids
    for i in range(logits.shape[0]):
        scores = run.process(logits[i : i + 1], kept, kept.shape[1] - prompt)  # (1, V)
        choice = scores.argmax(-1, keepdim=True)  # (1, 1)
        kept = torch.cat([kept, choice], 1)
        ended = run.eos is not None and bool(torch.isin(choice, run.eos))
        if ended or (run.stopped is not None and bool(run.stopped(kept)[0])):
            return kept[:, ids.shape[1] :], True
        if i == drafts.shape[1] or choice.item() != drafts[0, i].item():
            return kept[:, ids.shape[1] :], False
    raise AssertionError("unreachable: the last row always ends the check")
