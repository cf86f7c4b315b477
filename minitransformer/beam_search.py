"""Beam search: follow the K most likely partial sequences instead of only one.

Greedy decoding commits to the single best token at every step, and a token that looked best may
lead nowhere good. Beam search keeps K = num_beams running sequences ("beams"). Each step:

1. score every continuation of every beam: total = the beam's sum of log-probs + log p(token)
2. take the best 2K of these K × V candidates (draw them instead when do_sample=True: "beam
   sampling"); more than K, so that K beams can go on even if the best ones just ended
   ((1 + E) * K with E > 1 EOS ids)
3. a candidate that ends (EOS, a stop string, or max_length) becomes a *finished hypothesis*,
   scored   sum of log-probs / (number of generated tokens) ** length_penalty;
   a pool keeps the K best finished hypotheses
4. the K best candidates that did not end become the next beams; the KV cache follows them
   (row i of the cache is replaced by the row of beam i's parent: `reorder`)

length_penalty > 0 divides the (negative) sum by a larger number for longer hypotheses, which
favours them; 0 compares plain sums; < 0 favours short ones. When to stop (`early_stopping`):
    True     as soon as the pool holds K finished hypotheses
    False    when the best running beam, scored at its current length, cannot beat the worst
             hypothesis in the full pool (a heuristic: with length_penalty > 0 a longer beam
             might still have won)
    "never"  only when no beam can beat the pool even at the most favourable length (max_length
             when length_penalty > 0): the exact bound, so it may run to max_length
Every rule above follows Hugging Face transformers 5 (`GenerationMixin._beam_search` and its
helpers in generation/utils.py), so the outputs and scores agree token for token
(tests/test_generation.py). One deliberate difference: Hugging Face marks what must not be chosen
(an ended candidate as a beam, a running one as a hypothesis, an empty pool slot) by adding -1e9
to its score, and that fails when real scores are that low too: with temperature=1e-9 every real
hypothesis scores below an empty slot, and the search returns no new tokens. Here such entries
are -inf, which no real score is below, so the results agree wherever Hugging Face's are real, and
as the temperature goes to 0 beam sampling becomes beam search (`_draw`). When fewer possible
sequences exist than num_return_sequences (the sampling filters leave too few tokens), Hugging
Face returns empty slots filled with id -1; this raises a ValueError instead.

`generate(..., num_beams=K)` (generation/loop.py) calls `beam_search`; `return_trace=True` records every
candidate of every step so that a notebook can draw the search tree. Used in the decoding notebook.
"""

from __future__ import annotations

import math

import torch

from .errors import ConfigError

IMPOSSIBLE = -math.inf  # the score of what must not be chosen (Hugging Face: -1e9, see above)
MAX_DIVISOR = 1e30  # length ** length_penalty beyond this makes float32 scores 0 or inf


def beam_search(
    step, reorder, process, prompt, *, num_beams, max_length, eos_ids=None, fill_id=None,
    length_penalty=1.0, early_stopping=False, num_return_sequences=1, do_sample=False,
    generator=None, stopped=None, return_trace=False,
):
    """Beam search (or beam sampling) over a model given as functions.

    step(ids (B*K, L)) -> logits (B*K, V) for the next token of every beam
    reorder(index (B*K,)): the model's cache row i becomes its old row index[i]
    process(log_probs (B*K, V), ids (B*K, L), n_new) -> scores: the logits processors
    prompt: (B*K, T), every prompt already repeated K times (beams of a prompt are adjacent rows)
    eos_ids: (E,) tensor or None; fill_id: written after the end of shorter hypotheses
    stopped(ids (N, L)) -> bool (N,): extra stopping rule (stop strings), or None
    Returns (sequences (B*n, T + new), scores (B*n,), trace or None), n = num_return_sequences:
    the n best finished hypotheses of each prompt, best first. See `record_step` for the trace.
    """
    K, n = num_beams, num_return_sequences
    B, T = prompt.shape[0] // K, prompt.shape[1]
    _check_length_penalty(length_penalty, max_length - T)
    n_candidates = max(2, 1 + (len(eos_ids) if eos_ids is not None else 0)) * K  # 2K with one EOS id
    fill = -1 if fill_id is None else fill_id
    device = prompt.device

    running = prompt.view(B, K, T)  # (B, K, L): the beams; L grows by one per step
    # Only beam 0 starts alive: the K copies of a prompt would otherwise propose K copies of each token.
    running_scores = torch.zeros(B, K, device=device)
    running_scores[:, 1:] = IMPOSSIBLE
    pool = running.clone()  # (B, K, L): finished hypotheses, padded with fill; one column more per step
    pool_scores = torch.full((B, K), IMPOSSIBLE, device=device)
    pool_finished = torch.zeros(B, K, dtype=torch.bool, device=device)  # which slots hold a real one
    pool_lengths = torch.zeros(B, K, dtype=torch.long, device=device)  # their numbers of new tokens
    improvable = torch.ones(B, 1, dtype=torch.bool, device=device)  # can a beam still beat the pool?
    in_top_k = torch.arange(n_candidates, device=device) < K
    trace = None
    if return_trace:
        trace = [{"prompt": running[b, 0].tolist(), "steps": [], "finished": []} for b in range(B)]

    for length in range(T, max_length):
        flat = running.reshape(B * K, length)
        log_probs = process(step(flat).log_softmax(dim=-1), flat, length - T)  # (B*K, V)
        V = log_probs.shape[-1]
        totals = (log_probs.view(B, K, V) + running_scores[:, :, None]).view(B, K * V)

        # 1-2. the candidates: 2K continuations of the K beams, best first
        if do_sample:
            scores, picks = _draw(totals, n_candidates, generator)
        else:
            scores, picks = totals.topk(n_candidates)  # (B, 2K) each
        parents, tokens = picks // V, picks % V  # which beam, which token
        candidates = torch.cat([_take(running, parents), tokens[:, :, None]], dim=-1)  # (B, 2K, L+1)
        ends = torch.full_like(tokens, length + 1 >= max_length, dtype=torch.bool)
        if eos_ids is not None:
            ends |= torch.isin(tokens, eos_ids)
        if stopped is not None:
            ends |= stopped(candidates.view(B * n_candidates, length + 1)).view(B, n_candidates)

        # 3. the pool: the candidates that end here (only those among the best K count) join it if
        # they beat its worst; the others get -inf, and so does an impossible candidate already.
        n_new = length + 1 - T
        pool_is_full = pool_finished.all(dim=-1, keepdim=True) & (early_stopping is True)  # (B, 1)
        may_join = ends & in_top_k & ~pool_is_full & improvable  # (B, 2K)
        final = (scores / (n_new**length_penalty)).masked_fill(~may_join, IMPOSSIBLE)
        best = torch.cat([pool_scores, final], dim=1).topk(K).indices  # (B, K) of the 3K
        pool = torch.nn.functional.pad(pool, (0, 1), value=fill)  # (B, K, L+1), like the candidates
        pool = _take(torch.cat([pool, candidates], dim=1), best)
        pool_scores = torch.cat([pool_scores, final], dim=1).gather(1, best)
        pool_finished = pool_scores > IMPOSSIBLE  # a slot holds a hypothesis iff it has a real score
        pool_lengths = torch.cat([pool_lengths, torch.full_like(tokens, n_new)], dim=1).gather(1, best)

        # 4. the next beams: the K best candidates that go on; the cache follows their parents
        alive_scores = scores.masked_fill(ends, IMPOSSIBLE)
        chosen = alive_scores.topk(K).indices  # (B, K)
        running, running_scores = _take(candidates, chosen), alive_scores.gather(1, chosen)
        offsets = torch.arange(B, device=device)[:, None] * K  # beam k of prompt b is row b*K + k
        reorder((parents.gather(1, chosen) + offsets).view(-1))
        if trace is not None:
            record_step(trace, scores, parents, tokens, ends, chosen, log_probs.view(B, K, V))

        # Stop? Could the best running beam still beat the worst finished hypothesis?
        if early_stopping == "never" and length_penalty > 0.0:
            best_length = max_length - T  # the exact bound: its longest possible length
        else:
            best_length = n_new  # the heuristic: its current length
        best_running = running_scores[:, :1] / (best_length**length_penalty)
        worst_in_pool = torch.where(pool_finished, pool_scores.min(dim=1, keepdim=True).values, IMPOSSIBLE)
        improvable = improvable & (best_running > worst_in_pool).any(dim=-1, keepdim=True)
        all_full = bool(pool_finished.all()) and early_stopping is True
        if not improvable.any() or all_full or ends.all():
            break

    if trace is not None:
        for b, item in enumerate(trace):
            item["finished"] = [
                {"tokens": pool[b, k, T : T + int(pool_lengths[b, k])].tolist(),
                 "score": float(pool_scores[b, k]), "returned": k < n}
                for k in range(K) if pool_finished[b, k]
            ]
    _check_enough_hypotheses(pool_finished, n)
    out_length = T + int(pool_lengths[:, :n].max())
    return pool[:, :n, :out_length].reshape(B * n, out_length), pool_scores[:, :n].reshape(B * n), trace


def _draw(totals, n, generator):
    """Beam sampling: n of the B x (K*V) candidates drawn without replacement from softmax(totals),
    best first -> (scores (B, n), picks (B, n)).

    When fewer than n candidates have a probability that float32 can represent (a tiny temperature
    makes the others underflow to 0), the draw takes all of those and then arbitrary ones, even
    impossible ones (-inf). Those rows take the best of the rest by score instead: the limit of
    sampling as the temperature goes to 0. (Hugging Face keeps the arbitrary ones.)
    """
    dead = totals.max(dim=-1, keepdim=True).values == IMPOSSIBLE  # (B, 1) no beam left: a uniform stand-in
    probs = totals.masked_fill(dead, 0.0).softmax(dim=-1)
    picks = torch.multinomial(probs, n, generator=generator)
    short = (probs.gather(1, picks) == 0).any(dim=1, keepdim=True)  # (B, 1): every possible draw was taken
    if short.any():
        best_rest = totals.masked_fill(probs > 0, math.inf).topk(n).indices  # the drawable ones, then by score
        picks = torch.where(short, best_rest, picks)
    scores, order = totals.gather(1, picks).sort(dim=-1, descending=True)
    return scores, picks.gather(1, order)


def _check_length_penalty(length_penalty, max_new):
    """Scores are divided by (new tokens) ** length_penalty: refuse what float32 cannot hold."""
    if max_new > 1 and abs(length_penalty) * math.log10(max_new) > math.log10(MAX_DIVISOR):
        bound = math.log10(MAX_DIVISOR) / math.log10(max_new)
        raise ConfigError(
            f"length_penalty={length_penalty} is too extreme: a hypothesis of {max_new} new tokens would be "
            f"scored sum / {max_new} ** {length_penalty}, beyond float32's range (the scores become 0 or "
            f"inf); with {max_new} new tokens at most, use |length_penalty| <= {bound:.3g} (usual: 0.5 to 2)"
        )


def _check_enough_hypotheses(pool_finished, n):
    """A slot of the pool without a finished hypothesis must not be returned (Hugging Face returns ids -1)."""
    found = pool_finished[:, :n].sum(dim=1)  # (B,): real hypotheses among the n returned slots
    if (found < n).any():
        b = int((found < n).nonzero()[0])
        raise ValueError(
            f"beam search found only {int(found[b])} possible sequences for prompt {b}, fewer than "
            f"num_return_sequences={n}: the sampling filters (top_k, top_p, min_p, typical_p), a small "
            f"vocabulary or few new tokens leave too few candidates. Ask for num_return_sequences <= "
            f"{int(found.min())}, or loosen the filters"
        )


def _take(x, index):
    """x (B, N, L), index (B, M) -> (B, M, L): the rows `index` of each batch item."""
    return x.gather(1, index[:, :, None].expand(-1, -1, x.shape[-1]))


def record_step(trace, scores, parents, tokens, ends, chosen, log_probs):
    """Append one step to the trace: a list with one dict per prompt,

        {"prompt": [ids], "steps": [step, ...], "finished": [hypothesis, ...]}
        step       = {"candidates": [candidate, ...]}, best first
        candidate  = {"parent": k, "token": id, "log_prob": log p(token | beam k),
                      "score": the sum of log-probs so far, "ends": EOS, stop string or max_length,
                      "beam": its index among the next beams, or None}
        hypothesis = {"tokens": [generated ids], "score": sum / length ** length_penalty, "returned": bool}

    A tree: the nodes of step s are its candidates with a "beam" index; each candidate of step s+1
    hangs below the node of step s whose "beam" equals its "parent". At step 0 every candidate
    comes from beam 0 (the other beams start at -inf). Candidates that end are leaves.
    """
    B, K = chosen.shape
    beam_index = torch.arange(K, device=chosen.device).expand(B, K)
    beam_of = torch.full_like(tokens, -1).scatter_(1, chosen, beam_index)  # (B, 2K), -1: not a beam
    token_log_probs = log_probs.view(B, -1).gather(1, parents * log_probs.shape[-1] + tokens)
    rows = zip(parents.tolist(), tokens.tolist(), token_log_probs.tolist(), scores.tolist(), ends.tolist(),
               beam_of.tolist(), strict=True)
    for item, (p, t, lp, s, e, k) in zip(trace, rows, strict=True):
        item["steps"].append({"candidates": [
            {"parent": p[j], "token": t[j], "log_prob": lp[j], "score": s[j], "ends": e[j],
             "beam": k[j] if k[j] >= 0 and not e[j] else None}
            for j in range(len(t))
        ]})
