"""The package's own exception types.

Each subclasses the built-in exception a user would expect (ValueError, TypeError, ...), so
`except ValueError` keeps working, while `except MiniTransformerError` catches anything we raise
on purpose. Messages name the argument, the value received and what is allowed.
"""


class MiniTransformerError(Exception):
    """Base class for every error that minitransformer raises on purpose."""


class ConfigError(MiniTransformerError, ValueError):
    """A `TransformerConfig` (or another settings object) that cannot build what it describes."""


class AssistantError(ConfigError):
    """An assistant_model that cannot draft for this generation (assisted decoding needs greedy search on one
    prompt of a decoder-only model, within its context): callers may fall back to the model alone."""


class ShapeError(MiniTransformerError, ValueError):
    """A tensor of the wrong shape: the message says which argument and which shape was expected."""


class CheckpointError(MiniTransformerError, ValueError):
    """A file that is missing pieces, truncated, of the wrong format, or not a minitransformer checkpoint."""


class UnknownTokenError(MiniTransformerError, ValueError):
    """Text containing a symbol the tokenizer has no id for (and no [UNK] token to fall back on)."""


class TrainingDivergedError(MiniTransformerError, RuntimeError):
    """The loss became NaN or infinite during training."""


def describe(value, limit: int = 60) -> str:
    """A short printable description of a received value, for error messages."""
    try:
        import torch

        if isinstance(value, torch.Tensor):
            return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
