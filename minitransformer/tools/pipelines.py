"""`pipeline(...)`: Hugging Face's high-level interface, on this package's models.

    generator = mt.pipeline("text-generation", model="shakespeare-char")
    generator("ROMEO:", max_length=100, num_return_sequences=3, do_sample=True, top_k=50, top_p=0.95, num_beams=5)
    # -> [{"generated_text": "ROMEO: ..."}, {...}, {...}]

Code written for `transformers.pipeline` runs with only the import changed. Three tasks:
- "text-generation" (GPT): generated text, the prompt included unless return_full_text=False;
- "fill-mask" (MaskedLM): the best fillers for the [MASK] in a text, with probabilities;
- "text2text-generation" (Seq2SeqTransformer): the output text for an input text.

`model` is a bundled model name, a checkpoint path, or a model (then pass `tokenizer=`);
a (model, tokenizer) pair also works. A pipeline takes one text or a list of texts (a list gives a
list of results, an empty list an empty list); fill-mask's `top_k` is at most the number of tokens
that can fill a [MASK] (the vocabulary less its special tokens), and a larger one is an error.

`dtype=torch.bfloat16` (or `torch_dtype=`, its older name in transformers) runs the model in bfloat16,
weights and KV cache: half the bytes to read per token. Its greedy text equals float32's until two
tokens are so nearly tied that bfloat16's rounding (3 significant digits) swaps them. With
`assistant_dtype="bfloat16"` instead, a bfloat16 copy drafts the tokens and the float32 model checks
them, several per pass (generation/assisted.py): float32's greedy text, token for token.

Characters outside the vocabulary: a tokenizer with "[UNK]" (tang-poetry-char's) reads them as [UNK], and the
text returned keeps the prompt as given; a tokenizer without one (the ASCII models') raises an error naming
the character and its position.
"""

from __future__ import annotations

import copy
import warnings

import torch

from ..checks import is_int, require_bool, require_int
from ..errors import AssistantError, ConfigError, describe
from ..generation import generate
from ..models import GPT, MaskedLM, Seq2SeqTransformer
from .pretrained import load_model

TASKS = {"text-generation": GPT, "fill-mask": MaskedLM, "text2text-generation": Seq2SeqTransformer}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pipeline(task: str, model=None, tokenizer=None, device="cpu", dtype="auto", torch_dtype=None,
             assistant_dtype=None):
    """Build the pipeline for `task` (one of TASKS) around `model`.

    dtype: the model's number format, a torch dtype or its name in DTYPES; "auto" keeps the one it has
    (float32 for a bundled model). torch_dtype: the same, under transformers' older name.
    assistant_dtype (text-generation): a copy of the model in this format (e.g. "bfloat16") drafts the
    tokens of greedy calls on one prompt, and the model checks them (generation/assisted.py): the model's
    own greedy text, at the copy's speed where the drafts hold.
    """
    if not isinstance(task, str) or task not in TASKS:
        raise ValueError(f"unknown task {describe(task)}; the tasks are {sorted(TASKS)}")
    _device(device)  # before any loading, so that a bad device gets this message whatever `model` is
    dtype = _dtype(dtype, torch_dtype)
    if model is None:
        model = {"text-generation": "shakespeare-char", "fill-mask": "shakespeare-mlm"}.get(
            task, "dates-seq2seq"
        )
    if isinstance(model, tuple) and len(model) == 2:
        model, tokenizer = model
    if isinstance(model, str) or hasattr(model, "__fspath__"):
        model, bundled_tokenizer = load_model(model, device)
        tokenizer = tokenizer or bundled_tokenizer
    if not isinstance(model, TASKS[task]):
        raise TypeError(f"task {task!r} needs a {TASKS[task].__name__}, got {type(model).__name__}")
    if tokenizer is None:
        raise ValueError(
            "tokenizer is required when model is a model object: pipeline(task, model=m, tokenizer=t)"
        )
    if not all(hasattr(tokenizer, a) for a in ("encode", "decode", "special_token_ids")):
        raise TypeError(f"tokenizer must be a minitransformer tokenizer, got {describe(tokenizer)}")
    kinds = {"text-generation": TextGenerationPipeline, "fill-mask": FillMaskPipeline}
    pipe = kinds.get(task, Text2TextPipeline)(model.to(device=device, dtype=dtype).eval(), tokenizer)
    if assistant_dtype is not None:
        found = _dtype(assistant_dtype, None)
        if task != "text-generation" or found is None:
            raise ValueError(f"assistant_dtype drafts greedy tokens for task 'text-generation' in a dtype such "
                             f"as 'bfloat16', got {describe(assistant_dtype)} for task {task!r}")
        pipe.assistant = copy.deepcopy(pipe.model).to(found)
    return pipe


def _dtype(dtype, torch_dtype) -> torch.dtype | None:
    """dtype or torch_dtype as a floating torch.dtype, or None for "auto" (keep the model's)."""
    if torch_dtype is not None and dtype not in ("auto", None, torch_dtype):
        raise ValueError(f"dtype={describe(dtype)} and torch_dtype={describe(torch_dtype)} differ; give one")
    chosen = torch_dtype if torch_dtype is not None else dtype
    if chosen in ("auto", None):
        return None
    found = DTYPES.get(chosen) if isinstance(chosen, str) else chosen
    if found not in DTYPES.values():
        names = ", ".join(f"torch.{name}" for name in DTYPES)
        raise ValueError(f"dtype must be 'auto' or one of {names} (or its name), got {describe(chosen)}")
    return found


def _device(device) -> torch.device:
    """device as a torch.device this machine has, or a ValueError naming it."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {describe(device)}") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r}, but this machine has no CUDA device: use device='cpu'")
    return device


class _Pipeline:
    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.assistant = None  # text-generation: a cheaper copy that drafts greedy tokens (assistant_dtype)

    def __call__(self, inputs, **kwargs):
        if isinstance(inputs, str):
            return self._one(inputs, **kwargs)
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(f"inputs must be a string or a list of strings, got {type(inputs).__name__}")
        for i, x in enumerate(inputs):
            if not isinstance(x, str):
                raise TypeError(f"inputs must be a string or a list of strings, got {describe(x)} at index {i}")
        return self._many(list(inputs), **kwargs)  # (an empty list gives an empty list)

    def _many(self, inputs, **kwargs):
        return [self._one(x, **kwargs) for x in inputs]

    def _ids(self, text: str, whole=True) -> torch.Tensor:
        """(1, T) the text's ids; ValueError if it has none, or (whole) more than the model's context."""
        ids, context = self.tokenizer.encode(text), self.model.config.max_len
        if not ids:
            raise ValueError("the input text is empty; give at least one character")
        if whole and len(ids) > context:  # (a prompt may be longer: generation slides over it)
            raise ValueError(f"the input text has {len(ids)} tokens, more than the model reads at once "
                             f"(max_len={context}); shorten it")
        return torch.tensor([ids], dtype=torch.long, device=next(self.model.parameters()).device)


class TextGenerationPipeline(_Pipeline):
    def _one(self, prompt, return_full_text=True, **kwargs):
        return self._many([prompt], return_full_text, **kwargs)[0]

    def _many(self, prompts, return_full_text=True, batch_size=32, **kwargs):
        """Prompts of the same length share one `generate` call (batch_size at a time), so a list costs about
        one call per distinct length; without padding, each result is the one the prompt gets alone."""
        require_bool("return_full_text", return_full_text)
        require_int("batch_size", batch_size, minimum=1)
        if any(not p for p in prompts):
            raise ValueError("prompt is empty; give at least one character to continue from")
        ids = [self._ids(p, whole=False)[0] for p in prompts]
        by_length: dict[int, list[int]] = {}
        for i, row in enumerate(ids):
            by_length.setdefault(len(row), []).append(i)
        results: list = [None] * len(prompts)
        for length, members in by_length.items():
            for start in range(0, len(members), batch_size):
                group = members[start : start + batch_size]
                out = self._generate(torch.stack([ids[i] for i in group]), kwargs)  # (len(group) * n, L)
                new = [self.tokenizer.decode(row[length:].tolist(), skip_special_tokens=True) for row in out]
                n = len(new) // len(group)  # num_return_sequences
                for k, i in enumerate(group):
                    # the prompt as the user wrote it (as Hugging Face does): a character that the tokenizer
                    # maps to [UNK] is read as [UNK] by the model, but not lost from the text returned
                    prefix = prompts[i] if return_full_text else ""
                    results[i] = [{"generated_text": prefix + t} for t in new[k * n : (k + 1) * n]]
        return results

    def _generate(self, batch, kwargs):
        """generate(...) with the drafting copy where assisted decoding applies, else the model alone. The
        generation's own check decides (greedy, one prompt, within the context, ...: assisted.check_assistant);
        its warnings are shown once, from the call that runs."""
        if self.assistant is None:
            return generate(self.model, batch, **kwargs)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                out = generate(self.model, batch, assistant_model=self.assistant, **kwargs)
            except AssistantError:  # sampling, beams, several prompts, past the context, no cache, ...
                out = None
        if out is None:
            return generate(self.model, batch, **kwargs)
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return out


class FillMaskPipeline(_Pipeline):
    def _one(self, text, top_k=5):
        mask_id = self.tokenizer.mask_token_id
        if mask_id is None:
            raise ValueError("this tokenizer has no [MASK] token")
        self._check_top_k(top_k)
        ids = self._ids(text)
        where = (ids[0] == mask_id).nonzero().flatten().tolist()
        if not where:
            raise ValueError(f"text must contain [MASK] (the token to fill in), got {text!r}")
        with torch.inference_mode():
            probs = self.model(ids)[0].float().softmax(-1)  # (T, V)
        results = [self._fills(ids[0], position, probs[position], top_k) for position in where]
        return results[0] if len(results) == 1 else results  # one list per [MASK], like Hugging Face

    def _check_top_k(self, top_k):
        """top_k: at least 1, at most the tokens that can fill a [MASK] (special tokens never do)."""
        vocab = self.tokenizer.vocab_size
        fillers = vocab - len(self.tokenizer.special_token_ids)
        if not (is_int(top_k) and 1 <= top_k <= fillers):
            raise ConfigError(
                f"top_k must be an integer in [1, {fillers}] (the tokens that can fill a [MASK]: "
                f"{vocab} in the vocabulary less {vocab - fillers} special ones), "
                f"got {describe(top_k)}"
            )

    def _fills(self, ids, position, probs, top_k):
        probs = probs.clone()
        probs[list(self.tokenizer.special_token_ids)] = 0.0  # a special token is never a filler
        scores, tokens = probs.topk(top_k)
        fills = []
        for score, token in zip(scores.tolist(), tokens.tolist(), strict=True):
            filled = ids.clone()
            filled[position] = token
            fills.append(
                {
                    "score": score,
                    "token": token,
                    "token_str": self.tokenizer.decode([token]),
                    "sequence": self.tokenizer.decode(filled.tolist(), skip_special_tokens=True),
                }
            )
        return fills


class Text2TextPipeline(_Pipeline):
    def _one(self, text, **kwargs):
        tok = self.tokenizer
        kwargs.setdefault("max_new_tokens", self.model.config.max_len - 1)
        out = generate(
            self.model,
            src_ids=self._ids(text),
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            **kwargs,
        )
        return [{"generated_text": tok.decode(row.tolist(), skip_special_tokens=True)} for row in out]
