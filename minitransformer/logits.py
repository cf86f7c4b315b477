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

Used by generation.py and the sampling notebook and widgets.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch

from .errors import ConfigError, ShapeError, describe

REMOVED = float("-inf")  # a removed token: softmax turns it into probability exactly 0


# ----------------------------------------------------------------------------- warpers (sampling only)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits / temperature.  (B, V) -> (B, V).

    softmax(z / t): t < 1 sharpens the distribution (t -> 0 approaches greedy), t > 1 flattens it.
    """
    _check_logits(logits)
    _check_positive("temperature", temperature, hint="for greedy decoding use do_sample=False, not 0")
    return _temperature(logits, temperature)


def _temperature(logits, temperature):
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Keep the k highest logits of each row, set the rest to -inf.  (B, V) -> (B, V).

    k = 0 disables the filter (as top_k=0 does in `generate`); k >= V keeps everything.
    Ties: every token equal to the k-th largest logit is kept, so more than k may survive.
    At least `min_tokens_to_keep` tokens are kept (k is raised to it).
    """
    _check_logits(logits)
    _check_count("k", k, minimum=0, hint="0 disables top-k")
    _check_count("min_tokens_to_keep", min_tokens_to_keep, minimum=1)
    return _top_k(logits, k, min_tokens_to_keep)


def _top_k(logits, k, min_tokens_to_keep):
    if k == 0:
        return logits.clone()
    k = min(max(k, min_tokens_to_keep), logits.shape[-1])
    kth_largest = logits.topk(k, dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth_largest, REMOVED)  # a comparison, so ties survive


def top_p_filter(logits: torch.Tensor, p: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches p.

    (B, V) -> (B, V). Holtzman et al. 2019, "The Curious Case of Neural Text Degeneration".
    p = 1 keeps everything (`generate` skips top_p=1.0 too; Hugging Face's warper itself would
    still drop tokens whose probability underflows to 0). Among tokens tied at the boundary,
    which ones survive follows `torch.sort`'s (unstable) order, exactly as in Hugging Face.
    """
    _check_logits(logits)
    _check_fraction("p", p)
    _check_count("min_tokens_to_keep", min_tokens_to_keep, minimum=1)
    return _top_p(logits, p, min_tokens_to_keep)


def _top_p(logits, p, min_tokens_to_keep):
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


def min_p_filter(logits: torch.Tensor, p: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Min-p: keep the tokens whose probability is at least p * (probability of the top token).

    (B, V) -> (B, V). The cut-off scales with the model's confidence: a peaked distribution keeps
    few tokens, a flat one keeps many. p = 1 keeps only the tokens tied with the most likely one.
    min_tokens_to_keep rescues the most *probable* tokens: ones whose probability underflows to 0
    tie with already removed ones, and which of them are rescued is then up to `topk`.
    """
    _check_logits(logits)
    _check_fraction("p", p)
    _check_count("min_tokens_to_keep", min_tokens_to_keep, minimum=1)
    return _min_p(logits, p, min_tokens_to_keep)


def _min_p(logits, p, min_tokens_to_keep):
    probs = logits.softmax(dim=-1)  # (B, V)
    remove = probs < p * probs.amax(dim=-1, keepdim=True)
    keep = probs.topk(min(min_tokens_to_keep, probs.shape[-1]), dim=-1).indices  # (B, min_tokens_to_keep)
    remove = remove.scatter(-1, keep, False)
    return logits.masked_fill(remove, REMOVED)


def typical_filter(logits: torch.Tensor, mass: float, min_tokens_to_keep: int = 1) -> torch.Tensor:
    """Locally typical sampling: keep the tokens whose surprise -log p is closest to the entropy H.

    (B, V) -> (B, V). Tokens are ranked by | -log p_i - H | (most typical first) and kept until
    their probability reaches `mass`; mass = 1 keeps everything (as in `generate`, which skips
    it). Meister et al. 2022, "Locally Typical Sampling". The most likely token may be removed.
    """
    _check_logits(logits)
    _check_fraction("mass", mass)
    _check_count("min_tokens_to_keep", min_tokens_to_keep, minimum=1)
    return _typical(logits, mass, min_tokens_to_keep)


def _typical(logits, mass, min_tokens_to_keep):
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


def apply_repetition_penalty(logits: torch.Tensor, input_ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """Make tokens that already occur in `input_ids` less likely (CTRL, Keskar et al. 2019).

    logits: (B, V); input_ids: (B, T) -> (B, V). For each token in a row's context, a positive
    logit is divided by `penalty` and a negative one multiplied by it, so penalty > 1 always
    lowers it. Each token is penalised once, however often it occurs. penalty < 1 rewards repeats.
    """
    _check_logits(logits)
    _check_input_ids(input_ids, logits)
    _check_positive("penalty", penalty, hint="1.0 means no penalty")
    return _repetition_penalty(logits, input_ids, penalty)


def _repetition_penalty(logits, input_ids, penalty):
    seen = logits.gather(-1, input_ids)  # (B, T) the logits of the tokens already in the context
    penalised = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(-1, input_ids, penalised)  # repeated ids write the same value twice


def no_repeat_ngram_filter(logits: torch.Tensor, input_ids: torch.Tensor, n: int) -> torch.Tensor:
    """Ban every token that would repeat an n-gram already present in `input_ids`.

    logits: (B, V); input_ids: (B, T) -> (B, V). The next token completes the n-gram that starts
    with the last n - 1 tokens; if that start already occurred earlier, the tokens that followed
    it are set to -inf. n = 1 bans every token seen so far; n = 0 disables the filter (as
    no_repeat_ngram_size=0 does in `generate`; Hugging Face's processor itself rejects 0).
    """
    _check_logits(logits)
    _check_input_ids(input_ids, logits)
    _check_count("n", n, minimum=0, hint="0 disables the filter")
    return _no_repeat_ngram(logits, input_ids, n)


def _no_repeat_ngram(logits, input_ids, n):
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


@dataclass
class LogitsSettings:
    """The sampling knobs, with the defaults Hugging Face's `generate` uses.

    A setting at its identity value is skipped: temperature 1.0, top_k 0 or None, top_p 1.0,
    min_p None, typical_p 1.0, repetition_penalty 1.0, no_repeat_ngram_size 0. (Careful: only
    *leaving out* top_k gives 50 when sampling; an explicit top_k=None or top_k=0 turns top-k off,
    in `minitransformer.generate` as in Hugging Face's.)
    Make variants with `dataclasses.replace(settings, top_p=0.9)`.
    """

    temperature: float = 1.0
    top_k: int | None = 50
    top_p: float = 1.0
    min_p: float | None = None
    typical_p: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError (a ValueError) naming the first setting that is out of range."""
        _check_positive("temperature", self.temperature, hint="for greedy decoding use do_sample=False")
        if self.top_k is not None:
            _check_count("top_k", self.top_k, minimum=0, hint="0 or None disables top-k")
        _check_fraction("top_p", self.top_p, hint="1.0 disables top-p")
        if self.min_p is not None:
            _check_fraction("min_p", self.min_p, hint="None disables min-p")
        _check_fraction("typical_p", self.typical_p, hint="1.0 disables typical sampling")
        _check_positive("repetition_penalty", self.repetition_penalty, hint="1.0 means no penalty")
        _check_count("no_repeat_ngram_size", self.no_repeat_ngram_size, minimum=0, hint="0 disables it")


def logits_stages(
    logits: torch.Tensor,
    input_ids: torch.Tensor | None,
    settings: LogitsSettings,
    do_sample: bool = True,
    *,
    min_tokens_to_keep: int = 1,
) -> list[tuple[str, torch.Tensor]]:
    """The logits after each stage that `process_logits` applies, starting with ("raw", logits).

    Returns [(name, (B, V) tensor), ...]; the last tensor is exactly `process_logits(...)`.
    Skipped stages (settings at their identity value) do not appear.
    """
    stages = [("raw", _check_logits(logits).clone())]
    for name, stage in _plan(logits, input_ids, settings, do_sample, min_tokens_to_keep):
        stages.append((name, stage(stages[-1][1])))
    return stages


def process_logits(
    logits: torch.Tensor,
    input_ids: torch.Tensor | None,
    settings: LogitsSettings,
    do_sample: bool,
    *,
    min_tokens_to_keep: int = 1,
) -> torch.Tensor:
    """Apply every active setting, in the order Hugging Face's `generate` does.  (B, V) -> (B, V).

    Order (transformers, generation/utils.py, `GenerationMixin._get_logits_processor`):
      1. repetition penalty, 2. no-repeat n-gram                       (always)
      3. temperature, 4. top-k, 5. top-p, 6. min-p, 7. typical          (only when do_sample)
    Temperature comes first, so it changes which tokens top-p, min-p and typical keep (top-k
    is unaffected: dividing by t > 0 keeps the order). `input_ids` (B, T) is the context so far;
    it may be None when neither repetition setting is on. `min_tokens_to_keep` goes to every
    filter (beam-search sampling raises it so that enough candidates survive).
    """
    _check_logits(logits)
    _plan(logits, input_ids, settings, do_sample, min_tokens_to_keep)  # checks the rest
    return apply_unchecked(logits, input_ids, settings, do_sample, min_tokens_to_keep)


def apply_unchecked(logits, input_ids, settings, do_sample, min_tokens_to_keep=1):
    """`process_logits` without its checks, for a caller that made them once (generate does, before
    its first step: at a few microseconds per token, checking the same settings again at every
    step cost more than applying a temperature)."""
    result = logits
    for _, stage in _stages(input_ids, settings, do_sample, min_tokens_to_keep):
        result = stage(result)  # each stage returns a new tensor
    return logits.clone() if result is logits else result  # new logits even when no stage is active


def _plan(logits, input_ids, settings, do_sample, min_tokens_to_keep):
    """Check the settings and inputs, then return the active stages (see `_stages`)."""
    if not isinstance(settings, LogitsSettings):
        raise TypeError(f"settings must be a LogitsSettings, got {describe(settings)}")
    settings.validate()  # the fields may have been changed since construction
    _check_count("min_tokens_to_keep", min_tokens_to_keep, minimum=1)
    s = settings
    if s.repetition_penalty != 1.0 or s.no_repeat_ngram_size > 0:
        if input_ids is None:
            raise ConfigError(
                f"input_ids is None, but repetition_penalty={s.repetition_penalty} and no_repeat_ngram_size="
                f"{s.no_repeat_ngram_size} need the (B, T) tokens so far (or set them to 1.0 and 0)"
            )
        _check_input_ids(input_ids, logits)
    return _stages(input_ids, settings, do_sample, min_tokens_to_keep)


def _stages(input_ids, settings, do_sample, min_tokens_to_keep):
    """The active stages as (name, function of logits), in Hugging Face's order.

    Inputs and settings are checked before (`_plan`): the stages call the unchecked cores, so a
    generation step does not scan the logits again at every stage."""
    s, keep = settings, min_tokens_to_keep
    plan = []
    if s.repetition_penalty != 1.0:
        plan.append(("repetition penalty", lambda x: _repetition_penalty(x, input_ids, s.repetition_penalty)))
    if s.no_repeat_ngram_size > 0:
        plan.append(("no-repeat n-gram", lambda x: _no_repeat_ngram(x, input_ids, s.no_repeat_ngram_size)))
    if not do_sample:  # greedy decoding takes the argmax, which the warpers below cannot change
        return plan
    if s.temperature != 1.0:
        plan.append(("temperature", lambda x: _temperature(x, s.temperature)))
    if s.top_k:  # None and 0 both mean off
        plan.append(("top-k", lambda x: _top_k(x, s.top_k, keep)))
    if s.top_p < 1.0:
        plan.append(("top-p", lambda x: _top_p(x, s.top_p, keep)))
    if s.min_p is not None:
        plan.append(("min-p", lambda x: _min_p(x, s.min_p, keep)))
    if s.typical_p < 1.0:
        plan.append(("typical", lambda x: _typical(x, s.typical_p, keep)))
    return plan


# ----------------------------------------------------------------------------- argument checks


def _check_logits(logits):
    """(B, V) floating point without NaN; -inf (removed) and +inf are allowed."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor of shape (B, V), got {describe(logits)}")
    if logits.dim() != 2:
        raise ShapeError(
            f"logits must have shape (B, V), one row of scores per sequence, got shape "
            f"{tuple(logits.shape)}; for one sequence use logits[None], for model output "
            "(B, T, V) take logits[:, -1]"
        )
    if torch.isnan(logits).any():
        raise ValueError("logits contain NaN; a removed token should be -inf, and NaN means an upstream bug")
    return logits


def _check_input_ids(input_ids, logits):
    """(B, T) integer token ids in [0, V), with the same B as the logits."""
    if (
        not isinstance(input_ids, torch.Tensor)
        or input_ids.is_floating_point()
        or input_ids.dtype == torch.bool
    ):
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


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_positive(name, value, hint=""):
    if not (_is_number(value) and 0 < value < math.inf):
        raise ConfigError(
            f"{name} must be a finite number > 0, got {describe(value)}" + (f" ({hint})" if hint else "")
        )


def _check_fraction(name, value, hint=""):
    if not (_is_number(value) and 0 < value <= 1):
        raise ConfigError(
            f"{name} must be a number in (0, 1], got {describe(value)}" + (f" ({hint})" if hint else "")
        )


def _check_count(name, value, minimum, hint=""):
    if not (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum):
        raise ConfigError(
            f"{name} must be an integer >= {minimum}, got {describe(value)}" + (f" ({hint})" if hint else "")
        )
