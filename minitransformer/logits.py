"""From logits to the distribution we sample from: the knobs of text generation, one function each.

A language model gives one score (logit) per vocabulary token for the next position. Before
sampling, generation reshapes those scores in two kinds of steps:

* processors change the scores for greedy decoding and sampling alike: the repetition penalty and
  the no-repeat-n-gram ban;
* warpers only matter when sampling: temperature rescales, and top-k, top-p (nucleus), min-p and
  typical sampling remove unlikely tokens by setting their logits to -inf (probability 0).

Every function takes logits of shape (B, V) and returns NEW logits; the input is never modified.
A -inf entry means "already removed" and stays removed. Each one gives the same result as the
matching Hugging Face logits processor (tests/test_logits.py checks this, ties included), and
`process_logits` chains them in the order Hugging Face's `generate` does. `logits_stages` returns
every intermediate step, for plotting how each knob reshapes the distribution.

Arguments are checked by the `@checked` line above each function (checks.py), so the body is the
algorithm; `fn.__wrapped__` skips the checks (the decoding loop checks its settings once).

Used by generation/ and the sampling notebook and widgets.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from .checks import (
    checked,
    fraction,
    integer,
    logits_2d,
    optional,
    positive,
    require_fraction,
    require_int,
    require_positive,
)
from .errors import ConfigError, ShapeError, describe

REMOVED = float("-inf")  # a removed token: softmax turns it into probability exactly 0
_KEEP = integer(minimum=1)  # min_tokens_to_keep


def _context_ids(args):
    """input_ids: (B, T) integer token ids in [0, V), with the same B as the logits."""
    input_ids, logits = args["input_ids"], args["logits"]
    if not isinstance(input_ids, torch.Tensor) or input_ids.is_floating_point() or input_ids.dtype == torch.bool:
        raise TypeError(f"input_ids must be an integer tensor of shape (B, T), got {describe(input_ids)}")
    if input_ids.dim() != 2 or input_ids.shape[0] != logits.shape[0]:
        raise ShapeError(
            f"input_ids must have shape (B, T) with B = {logits.shape[0]} like logits {tuple(logits.shape)}, "
            f"got shape {tuple(input_ids.shape)}"
        )
    vocab = logits.shape[-1]
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= vocab):
        raise ValueError(
            f"input_ids must be token ids in [0, {vocab}) (V = logits.shape[-1]), "
            f"got values from {input_ids.min().item()} to {input_ids.max().item()}"
        )


# ----------------------------------------------------------------------------- warpers (sampling only)


@checked(logits=logits_2d, temperature=positive("for greedy decoding use do_sample=False, not 0"))
def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits / temperature.  (B, V) -> (B, V).

    softmax(z / t): t < 1 sharpens the distribution (t -> 0 approaches greedy), t > 1 flattens it.
    """
    return logits / temperature


@checked(logits=logits_2d, k=integer(minimum=0, hint="0 disables top-k"), min_tokens_to_keep=_KEEP)
def top_k_filter(logits: torch.Tensor, k: int, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Keep the k highest logits of each row, set the rest to -inf.  (B, V) -> (B, V).

    k = 0 disables the filter (as top_k=0 does in `generate`); k >= V keeps everything.
    Ties: every token equal to the k-th largest logit is kept, so more than k may survive.
    At least `min_tokens_to_keep` tokens are kept (k is raised to it).
    """
    if k == 0:
        return logits.clone()
    k = min(max(k, min_tokens_to_keep), logits.shape[-1])
    kth_largest = logits.topk(k, dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth_largest, REMOVED)  # a comparison, so ties survive


@checked(logits=logits_2d, p=fraction(), min_tokens_to_keep=_KEEP)
def top_p_filter(logits: torch.Tensor, p: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches p.

    (B, V) -> (B, V). Holtzman et al. 2019, "The Curious Case of Neural Text Degeneration".
    p = 1 keeps everything (`generate` skips top_p=1.0 too; Hugging Face's warper itself would
    still drop tokens whose probability underflows to 0). Among tokens tied at the boundary,
    which ones survive follows `torch.sort`'s (unstable) order, exactly as in Hugging Face.
    """
    if p == 1:
        return logits.clone()
    # Sort ascending, least likely first: the cumulative sum of token i is the mass of i and of every
    # less likely token. A token can go when that whole tail still fits in 1 - p, because the
    # tokens above it then already hold at least p. (Summing from this end is also what Hugging
    # Face does, so the rounding, and hence the borderline cases, come out identical.)
    sorted_logits, order = torch.sort(logits, dim=-1)  # (B, V) each
    tail_mass = sorted_logits.softmax(dim=-1).cumsum(dim=-1)  # (B, V)
    remove_sorted = tail_mass <= 1 - float(p)
    remove_sorted[:, -min_tokens_to_keep:] = False  # the most likely tokens sit at the end
    remove = remove_sorted.scatter(-1, order, remove_sorted)  # back to vocabulary order
    return logits.masked_fill(remove, REMOVED)


@checked(logits=logits_2d, p=fraction(), min_tokens_to_keep=_KEEP)
def min_p_filter(logits: torch.Tensor, p: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Min-p: keep the tokens whose probability is at least p * (probability of the top token).

    (B, V) -> (B, V). The cut-off scales with the model's confidence: a peaked distribution keeps
    few tokens, a flat one keeps many. p = 1 keeps only the tokens tied with the most likely one.
    min_tokens_to_keep rescues the most *probable* tokens: ones whose probability underflows to 0
    tie with already removed ones, and which of them are rescued is then up to `topk`.
    """
    probs = logits.softmax(dim=-1)  # (B, V)
    remove = probs < p * probs.amax(dim=-1, keepdim=True)
    keep = probs.topk(min(min_tokens_to_keep, probs.shape[-1]), dim=-1).indices  # (B, min_tokens_to_keep)
    remove = remove.scatter(-1, keep, False)
    return logits.masked_fill(remove, REMOVED)


@checked(logits=logits_2d, mass=fraction(), min_tokens_to_keep=_KEEP)
def typical_filter(logits: torch.Tensor, mass: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Locally typical sampling: keep the tokens whose surprise -log p is closest to the entropy H.

    (B, V) -> (B, V). Tokens are ranked by | -log p_i - H | (most typical first) and kept until
    their probability reaches `mass`; mass = 1 keeps everything (as in `generate`, which skips
    it). Meister et al. 2022, "Locally Typical Sampling". The most likely token may be removed.
    """
    if mass == 1:
        return logits.clone()
    log_probs = logits.log_softmax(dim=-1)  # (B, V)
    # nansum: a removed token contributes (-inf) * 0 = nan, which should count as 0
    entropy = -(log_probs * log_probs.exp()).nansum(dim=-1, keepdim=True)  # (B, 1)
    distance = (-log_probs - entropy).abs()  # (B, V) how atypical each token is
    sorted_distance, order = torch.sort(distance, dim=-1)  # most typical first
    cumulative = logits.gather(-1, order).softmax(dim=-1).cumsum(dim=-1)  # (B, V)
    # The first sorted position where the kept mass reaches `mass` is the last token we keep;
    # every token at least as typical as it survives (a comparison, so ties survive together).
    last = (cumulative < mass).sum(dim=-1, keepdim=True).clamp(max=logits.shape[-1] - 1)  # (B, 1)
    remove_sorted = sorted_distance > sorted_distance.gather(-1, last)
    remove_sorted[:, :min_tokens_to_keep] = False  # the most typical tokens sit at the start
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, REMOVED)


# ----------------------------------------------------------------------------- processors (greedy too)


@checked(_context_ids, logits=logits_2d, penalty=positive("1.0 means no penalty"))
def apply_repetition_penalty(logits: torch.Tensor, input_ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """Make tokens that already occur in `input_ids` less likely (CTRL, Keskar et al. 2019).

    logits: (B, V); input_ids: (B, T) -> (B, V). For each token in a row's context, a positive
    logit is divided by `penalty` and a negative one multiplied by it, so penalty > 1 always
    lowers it. Each token is penalised once, however often it occurs. penalty < 1 rewards repeats.
    """
    seen = logits.gather(-1, input_ids)  # (B, T) the logits of the tokens already in the context
    penalised = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(-1, input_ids, penalised)  # repeated ids write the same value twice


@checked(_context_ids, logits=logits_2d, n=integer(minimum=0, hint="0 disables the filter"))
def no_repeat_ngram_filter(logits: torch.Tensor, input_ids: torch.Tensor, n: int) -> torch.Tensor:
    """Ban every token that would repeat an n-gram already present in `input_ids`.

    logits: (B, V); input_ids: (B, T) -> (B, V). The next token completes the n-gram that starts
    with the last n - 1 tokens; if that start already occurred earlier, the tokens that followed
    it are set to -inf. n = 1 bans every token seen so far; n = 0 disables the filter (as
    no_repeat_ngram_size=0 does in `generate`; Hugging Face's processor itself rejects 0).
    """
    t = input_ids.shape[1]
    if n == 0 or t < n:  # no complete n-gram in the context yet
        return logits.clone()
    prefix = input_ids[:, t - (n - 1) :]  # (B, n-1) the start of the n-gram we are about to complete
    ngrams = input_ids.unfold(1, n, 1)  # (B, T-n+1, n) every n-gram of the context
    same_start = (ngrams[:, :, :-1] == prefix[:, None, :]).all(dim=-1)  # (B, T-n+1); all True if n = 1
    rows, starts = same_start.nonzero(as_tuple=True)
    banned = torch.zeros_like(logits, dtype=torch.bool)  # (B, V)
    banned[rows, ngrams[rows, starts, -1]] = True  # the token that completed each matching n-gram
    return logits.masked_fill(banned, REMOVED)


# ----------------------------------------------------------------------------- the whole chain


@dataclass(frozen=True)
class LogitsSettings:
    """The sampling knobs, with the defaults Hugging Face's `generate` uses; checked when built.

    A setting at its identity value is skipped: temperature 1.0, top_k 0 or None, top_p 1.0,
    min_p None, typical_p 1.0, repetition_penalty 1.0, no_repeat_ngram_size 0. (Careful: only
    *leaving out* top_k gives 50 when sampling; an explicit top_k=None or top_k=0 turns top-k off,
    in `minitransformer.generate` as in Hugging Face's.)
    Frozen: make variants with `dataclasses.replace(settings, top_p=0.9)`, which checks them again.
    """

    temperature: float = 1.0
    top_k: int | None = 50
    top_p: float = 1.0
    min_p: float | None = None
    typical_p: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0

    def __post_init__(self):
        self._check_processors()
        self._check_warpers()

    def _check_processors(self):
        require_positive("repetition_penalty", self.repetition_penalty, hint="1.0 means no penalty")
        require_int("no_repeat_ngram_size", self.no_repeat_ngram_size, minimum=0, hint="0 disables it")

    def _check_warpers(self):
        require_positive("temperature", self.temperature, hint="for greedy decoding use do_sample=False")
        optional(integer(minimum=0, hint="0 or None disables top-k"))("top_k", self.top_k)
        require_fraction("top_p", self.top_p, hint="1.0 disables top-p")
        optional(fraction(hint="None disables min-p"))("min_p", self.min_p)
        require_fraction("typical_p", self.typical_p, hint="1.0 disables typical sampling")


def stages(settings: LogitsSettings, input_ids, do_sample: bool, min_tokens_to_keep: int = 1):
    """The active stages as [(name, function of logits)], in Hugging Face's order; unchecked."""
    s, keep = settings, min_tokens_to_keep
    plan = []
    if s.repetition_penalty != 1.0:
        plan.append(("repetition penalty", partial(apply_repetition_penalty.__wrapped__,
                                                   input_ids=input_ids, penalty=s.repetition_penalty)))
    if s.no_repeat_ngram_size > 0:
        plan.append(("no-repeat n-gram", partial(no_repeat_ngram_filter.__wrapped__,
                                                 input_ids=input_ids, n=s.no_repeat_ngram_size)))
    if not do_sample:  # greedy decoding takes the argmax, which the warpers below cannot change
        return plan
    if s.temperature != 1.0:
        plan.append(("temperature", partial(apply_temperature.__wrapped__, temperature=s.temperature)))
    if s.top_k:  # None and 0 both mean off
        plan.append(("top-k", partial(top_k_filter.__wrapped__, k=s.top_k, min_tokens_to_keep=keep)))
    if s.top_p < 1.0:
        plan.append(("top-p", partial(top_p_filter.__wrapped__, p=s.top_p, min_tokens_to_keep=keep)))
    if s.min_p is not None:
        plan.append(("min-p", partial(min_p_filter.__wrapped__, p=s.min_p, min_tokens_to_keep=keep)))
    if s.typical_p < 1.0:
        plan.append(("typical", partial(typical_filter.__wrapped__, mass=s.typical_p, min_tokens_to_keep=keep)))
    return plan


def _chain_inputs(args):
    """settings is a LogitsSettings; input_ids are there when a repetition setting needs them."""
    s = args["settings"]
    if not isinstance(s, LogitsSettings):
        raise TypeError(f"settings must be a LogitsSettings, got {describe(s)}")
    if s.repetition_penalty != 1.0 or s.no_repeat_ngram_size > 0:
        if args["input_ids"] is None:
            raise ConfigError(
                f"input_ids is None, but repetition_penalty={s.repetition_penalty} and no_repeat_ngram_size="
                f"{s.no_repeat_ngram_size} need the (B, T) tokens so far (or set them to 1.0 and 0)"
            )
        _context_ids(args)


@checked(_chain_inputs, logits=logits_2d, min_tokens_to_keep=_KEEP)
def logits_stages(logits, input_ids, settings: LogitsSettings, do_sample=True, *, min_tokens_to_keep=1):
    """The logits after each stage that `process_logits` applies, starting with ("raw", logits).

    Returns [(name, (B, V) tensor), ...]; the last tensor is exactly `process_logits(...)`.
    Skipped stages (settings at their identity value) do not appear.
    """
    result = [("raw", logits.clone())]
    for name, stage in stages(settings, input_ids, do_sample, min_tokens_to_keep):
        result.append((name, stage(result[-1][1])))
    return result


@checked(_chain_inputs, logits=logits_2d, min_tokens_to_keep=_KEEP)
def process_logits(logits, input_ids, settings: LogitsSettings, do_sample: bool, *, min_tokens_to_keep=1):
    """Apply every active setting, in the order Hugging Face's `generate` does.  (B, V) -> (B, V).

    Order (transformers, generation/utils.py, `GenerationMixin._get_logits_processor`):
      1. repetition penalty, 2. no-repeat n-gram                       (always)
      3. temperature, 4. top-k, 5. top-p, 6. min-p, 7. typical          (only when do_sample)
    Temperature comes first, so it changes which tokens top-p, min-p and typical keep (top-k
    is unaffected: dividing by t > 0 keeps the order). `input_ids` (B, T) is the context so far;
    it may be None when neither repetition setting is on. `min_tokens_to_keep` goes to every
    filter (beam-search sampling raises it so that enough candidates survive).
    """
    result = logits
    for _, stage in stages(settings, input_ids, do_sample, min_tokens_to_keep):
        result = stage(result)  # each stage returns a new tensor
    return logits.clone() if result is logits else result  # new logits even when no stage is active
