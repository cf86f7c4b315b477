"""One dataclass describes every model in the package.

`TransformerConfig` holds the hyperparameters of the paper ("Attention Is All You Need") under
their paper names: d_model, n_heads, d_ff, n_layers. It is validated when it is built, so a
config that cannot make a model fails at once with a message that says how to fix it, instead
of as a shape error deep inside a forward pass. Make variants with `dataclasses.replace`.

Used by every model (notebook 05) and saved as JSON inside checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .checks import is_number, require_int
from .errors import ConfigError

POS_ENCODINGS = ("learned", "sinusoidal", "rope", "none")
ACTIVATIONS = ("gelu", "gelu_tanh", "relu")
ATTN_IMPLS = ("fast", "reference")


@dataclass
class TransformerConfig:
    vocab_size: int = 65  # V
    d_model: int = 128  # C, the width of every token's vector
    n_heads: int = 4  # H; each head works in d_head = d_model // n_heads dims
    n_layers: int = 4  # blocks in each stack (encoder and decoder each have n_layers)
    d_ff: int | None = None  # hidden width of the feed-forward net; None means 4 * d_model
    max_len: int = 256  # the context length: the most positions a model can see
    dropout: float = 0.0
    norm_first: bool = True  # pre-LN (GPT-2 and most modern models) or post-LN (the 2017 paper)
    pos_encoding: str = "learned"  # one of POS_ENCODINGS
    tie_weights: bool = True  # share the token embedding with the output projection
    activation: str = "gelu"  # one of ACTIVATIONS; GPT-2 uses "gelu_tanh", the paper "relu"
    bias: bool = True  # biases in linear layers and layer norms
    layer_norm_eps: float = 1e-5
    rope_base: float = 10000.0
    attn_impl: str = (
        "fast"  # "fast": fused kernel when no weights are asked for; "reference": always explicit
    )
    extra: dict = field(default_factory=dict)  # free-form notes saved with checkpoints (e.g. training preset)

    def __post_init__(self):
        for name in ("vocab_size", "d_model", "n_heads", "n_layers", "max_len"):
            require_int(name, getattr(self, name), minimum=1)
        if self.d_ff is None:
            self.d_ff = 4 * self.d_model
        require_int("d_ff", self.d_ff, minimum=1)
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"d_model={self.d_model} must be divisible by n_heads={self.n_heads} "
                f"(each head gets d_model // n_heads dims); try n_heads in {_divisors(self.d_model)}"
            )
        if self.pos_encoding == "rope" and self.d_head % 2:
            raise ConfigError(f"pos_encoding='rope' needs an even d_head, got d_model/n_heads={self.d_head}")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise ConfigError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        for name in ("layer_norm_eps", "rope_base"):  # inf or NaN (from a file, say) makes every output NaN
            value = getattr(self, name)
            if not (is_number(value) and 0 < value < math.inf):
                raise ConfigError(f"{name} must be > 0 and finite, got {value!r}")
        if not isinstance(self.extra, dict):
            raise ConfigError(f"extra must be a dict of notes, got {self.extra!r}")
        for name, allowed in (
            ("pos_encoding", POS_ENCODINGS),
            ("activation", ACTIVATIONS),
            ("attn_impl", ATTN_IMPLS),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("norm_first", "tie_weights", "bias"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @property
    def d_head(self) -> int:  # D
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TransformerConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"a config must be a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config fields {unknown}; known fields are {sorted(known)}")
        return cls(**d)


def _divisors(n: int) -> list[int]:
    return [k for k in range(1, min(n, 64) + 1) if n % k == 0]
