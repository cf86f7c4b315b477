"""Argument checks, in one place: each names the argument, the value received and what is allowed.

The lesson functions stay free of guard code. A public function declares its checks one line
above its definition,

    @checked(logits=logits_2d, p=fraction(), min_tokens_to_keep=integer(minimum=1))
    def top_p_filter(logits, p, min_tokens_to_keep=1): ...

so its body, which is what `inspect.getsource` shows in the notebooks, is the algorithm alone
(`inspect` unwraps the decorator). `top_p_filter.__wrapped__` is the unchecked function, for a
caller that checked its inputs once (the decoding loop, which runs it at every token).
A check is a function `check(name, value)` that raises or returns None. The exception types are
in errors.py; every one also subclasses the built-in (ValueError, ...) that a user would expect.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers

import torch

from .errors import ConfigError, ShapeError, describe


def checked(*whole, **checks):
    """Decorator: run `checks[name](name, value)` on the named arguments before every call.

    `whole` are checks of several arguments at once: each gets the dict of bound arguments.
    """

    def decorate(fn):
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            for name, check in checks.items():
                check(name, bound.arguments[name])
            for check in whole:
                check(bound.arguments)
            return fn(*args, **kwargs)

        return wrapper

    return decorate


# ----------------------------------------------------------------------------- numbers


def _hint(hint: str) -> str:
    return f" ({hint})" if hint else ""


def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def require_int(name, value, minimum=0, hint="", error=ConfigError):
    if not (is_int(value) and value >= minimum):
        allowed = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise error(f"{name} must be {allowed}, got {describe(value)}" + _hint(hint))


def require_positive(name, value, hint=""):
    if not (is_number(value) and 0 < value < math.inf):
        raise ConfigError(f"{name} must be a finite number > 0, got {describe(value)}" + _hint(hint))


def require_fraction(name, value, hint=""):
    if not (is_number(value) and 0 < value <= 1):
        raise ConfigError(f"{name} must be a number in (0, 1], got {describe(value)}" + _hint(hint))


def require_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {describe(value)}")


def require_choice(name, value, allowed):
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {tuple(allowed)}, got {describe(value)}")


def integer(minimum=0, hint=""):
    """A check for `@checked`: an int >= minimum."""
    return lambda name, value: require_int(name, value, minimum, hint)


def positive(hint=""):
    return lambda name, value: require_positive(name, value, hint)


def fraction(hint=""):
    return lambda name, value: require_fraction(name, value, hint)


def optional(check):
    """None is allowed too (it usually switches the feature off)."""
    return lambda name, value: None if value is None else check(name, value)


# ----------------------------------------------------------------------------- tensors


def logits_2d(name, logits):
    """(B, V) floating point without NaN; -inf (a removed token) and +inf are allowed."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of shape (B, V), got {describe(logits)}")
    if logits.dim() != 2:
        raise ShapeError(
            f"{name} must have shape (B, V), one row of scores per sequence, got shape "
            f"{tuple(logits.shape)}; for one sequence use logits[None], for model output "
            "(B, T, V) take logits[:, -1]"
        )
    if torch.isnan(logits).any():
        raise ValueError(f"{name} contain NaN; a removed token should be -inf, and NaN means an upstream bug")


def token_ids(name, ids, vocab_size=None):
    """A (B, T) integer tensor, with every id in [0, vocab_size) when vocab_size is given."""
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor of token ids, got {describe(ids)}")
    if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.is_complex():
        raise TypeError(f"{name} must hold integer token ids (torch.long), got dtype {ids.dtype}")
    if ids.dim() != 2:
        hint = f"; for a single sequence use {name}[None]" if ids.dim() == 1 else ""
        raise ShapeError(f"{name} must have shape (batch, seq_len), got {tuple(ids.shape)}{hint}")
    if vocab_size is not None and ids.numel():
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= vocab_size:
            bad = low if low < 0 else high
            raise ValueError(f"{name} contains id {bad}, outside the vocabulary [0, {vocab_size - 1}]")


def attention_mask(name, mask, batch_size=None, length=None):
    """A (B, T) tensor of 0/1 (or bool) values, 1 = real token; with the given B and T if known."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of 0/1 values, got {describe(mask)}")
    if mask.dim() != 2:
        raise ShapeError(
            f"{name} must have shape (batch, seq_len) with 1 = real token and 0 = padding, "
            f"got shape {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool and not ((mask == 0) | (mask == 1)).all():
        raise ValueError(f"{name} must hold only 0 (padding) and 1 (real token)")
    expected, got = (batch_size, length), tuple(mask.shape)
    if any(e is not None and e != g for e, g in zip(expected, got)):
        raise ShapeError(f"{name} has shape {got}, expected {expected} (batch, total seq_len)")
