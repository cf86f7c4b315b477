"""Every decoding knob, declared once: `GenerationSettings`, shared by generate, stream, the
explorers and the pipelines. Its defaults are Hugging Face's `GenerationConfig` defaults.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from dataclasses import dataclass

from ..checks import is_number, require_bool, require_int
from ..errors import ConfigError, describe
from ..logits import LogitsSettings

SAMPLING_ONLY = ("temperature", "top_k", "top_p", "min_p", "typical_p")


@dataclass(frozen=True)
class GenerationSettings(LogitsSettings):
    """The logits settings (temperature ... no_repeat_ngram_size, see LogitsSettings) and:

    max_new_tokens / max_length   new tokens / tokens in all, prompt included (max_new_tokens wins);
                                  with neither, 20 new tokens, or fewer if the context ends first
    min_new_tokens                EOS is forbidden until this many new tokens
    do_sample                     sample instead of taking the argmax
    num_beams, length_penalty, early_stopping   beam search (beam_search.py)
    num_return_sequences          samples per prompt, or best beams per prompt
    eos_token_id, pad_token_id, bos_token_id    an id or a list of EOS ids; the id that fills
                                  finished sequences (default: the first EOS id); the first token
    use_cache                     keep keys and values (a KV cache) instead of recomputing them
    stop_strings                  text that ends a sequence (needs a tokenizer)
    num_assistant_tokens          with an assistant_model: the tokens it drafts per check (assisted.py)
    Frozen and checked when built: make variants with `dataclasses.replace(settings, top_p=0.9)`.
    """

    max_new_tokens: int | None = None
    max_length: int | None = None
    min_new_tokens: int = 0
    do_sample: bool = False
    num_beams: int = 1
    length_penalty: float = 1.0
    early_stopping: bool | str = False
    num_return_sequences: int = 1
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    use_cache: bool = True
    stop_strings: str | list[str] | None = None
    num_assistant_tokens: int = 20

    def __post_init__(self):
        self._check_processors()
        require_bool("do_sample", self.do_sample)
        if self.do_sample:  # greedy search ignores the warpers' settings, as Hugging Face does
            self._check_warpers()
        self._check_lengths_and_ids()
        self._check_search()

    def _check_lengths_and_ids(self):
        for name in ("max_new_tokens", "max_length", "pad_token_id", "bos_token_id"):
            if getattr(self, name) is not None:
                require_int(name, getattr(self, name), 0 if name.endswith("token_id") else 1)
        require_int("min_new_tokens", self.min_new_tokens, 0)
        require_int("num_assistant_tokens", self.num_assistant_tokens, 1)
        require_bool("use_cache", self.use_cache)
        for i in self.eos_ids or []:
            require_int("eos_token_id", i, 0)
        if self.eos_ids == []:
            raise ConfigError("eos_token_id must be an id or a non-empty list of ids, got []")
        if not all(isinstance(s, str) and s for s in self.stop_list):
            raise ConfigError(f"stop_strings must be a non-empty string or a list of them, got "
                              f"{describe(self.stop_strings)}")

    def _check_search(self):
        require_int("num_beams", self.num_beams, 1)
        require_int("num_return_sequences", self.num_return_sequences, 1)
        if not (isinstance(self.early_stopping, bool) or self.early_stopping == "never"):
            raise ConfigError(f"early_stopping must be True, False or 'never', got {describe(self.early_stopping)}")
        if not (is_number(self.length_penalty) and math.isfinite(self.length_penalty)):
            raise ConfigError(f"length_penalty must be a finite number, got {describe(self.length_penalty)}")
        n, k = self.num_return_sequences, self.num_beams
        if k == 1 and n > 1 and not self.do_sample:
            raise ConfigError(f"num_return_sequences={n} needs do_sample=True or num_beams >= {n}: "
                              "greedy search has only one answer")
        if k > 1 and n > k:
            raise ConfigError(f"num_return_sequences={n} must be <= num_beams={k}: beam search returns its best beams")

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


FIELDS = tuple(f.name for f in dataclasses.fields(GenerationSettings))


def settings_from(settings: GenerationSettings | None, knobs: dict, caller: str) -> GenerationSettings:
    """The settings a call uses: `settings` (or the defaults) with Hugging Face-style keywords on top."""
    unknown = sorted(set(knobs) - set(FIELDS))
    if unknown:
        raise TypeError(f"{caller}() got unexpected keyword arguments {unknown}; the decoding settings are "
                        f"{list(FIELDS)}")
    if settings is not None and not isinstance(settings, GenerationSettings):
        raise TypeError(f"settings must be a GenerationSettings, got {describe(settings)}")
    settings = dataclasses.replace(settings or GenerationSettings(), **knobs)
    ignored = {name: getattr(settings, name) for name in SAMPLING_ONLY
               if getattr(settings, name) != getattr(GenerationSettings, name)}
    if ignored and not settings.do_sample:
        warnings.warn(f"{ignored} only matter when sampling; with do_sample=False they are ignored", stacklevel=3)
    return settings
