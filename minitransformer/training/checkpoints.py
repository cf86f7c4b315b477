"""Saving and loading models safely: one safetensors file, never a pickle.

A checkpoint is a single `.safetensors` file:
- tensors: the model's weights (tied weights stored once), and for resuming training the
  optimizer's moments and the random-number-generator states;
- header metadata (JSON strings): the model class, its `TransformerConfig`, the tokenizer,
  the training step and metrics.

Why not `torch.save`? It pickles, and unpickling a file can run any code inside it: a
checkpoint passed around a class must not be able to do that. safetensors files hold only
tensors and strings. Why one file? It can be written to a temporary name and renamed into
place in one atomic step, so a save interrupted halfway never damages the previous checkpoint
(files.py does the writing; checkpoint_format.py reads a file as the untrusted input it may be).

Used by the trainer, the command line and `load_pretrained` (tools/); notebook 07 shows a save and load.
"""

from __future__ import annotations

import json

import torch

from .. import files
from ..config import TransformerConfig
from ..errors import CheckpointError, describe
from ..models import GPT, MaskedLM, Seq2SeqTransformer
from ..tokenizers import tokenizer_from_dict
from .checkpoint_format import (
    FORMAT,
    FORMAT_VERSION,
    check_weights,
    device_of,
    header_json,
    optimizer_state,
    read_file,
    save_file,
)

MODEL_CLASSES = {cls.__name__: cls for cls in (GPT, MaskedLM, Seq2SeqTransformer)}
SAVE_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_DICT_FIELDS = ("config", "metrics", "tokenizer", "training_state")  # header fields holding a JSON object


def save_checkpoint(
    path, model, tokenizer=None, *, optimizer=None, training_state=None, metrics=None, dtype=None
):
    """Write `model` (and optionally its tokenizer and resumable training state) to `path` atomically.

    optimizer: a torch optimizer whose state is saved for exact resume.
    training_state: dict of JSON values (e.g. step) plus torch tensors (e.g. RNG states).
    metrics: dict of JSON values (e.g. {"val_loss": 1.2}).
    dtype: store floating weights in this dtype (torch.float16 / bfloat16 halve the file).
    """
    cls_name = type(model).__name__
    if cls_name not in MODEL_CLASSES or not isinstance(getattr(model, "config", None), TransformerConfig):
        raise TypeError(f"model must be one of {sorted(MODEL_CLASSES)}, got {describe(model)}")
    files.require_path("path", path)
    if dtype is not None and dtype not in SAVE_DTYPES:
        raise ValueError(
            f"dtype must be None, torch.float32, torch.float16 or torch.bfloat16, got {describe(dtype)}"
        )
    tensors = {f"model.{k}": _stored(k, v, dtype) for k, v in _unique_state(model).items()}
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "model_class": cls_name,
        "config": _json("the model's config", model.config.to_dict()),
        "metrics": _json("metrics", _require_dict("metrics", metrics)),
    }
    if tokenizer is not None:
        meta["tokenizer"] = _json("the tokenizer", tokenizer.to_dict())
    if optimizer is not None:
        _add_optimizer(tensors, meta, optimizer)
    if training_state is not None:
        _add_training_state(tensors, meta, _require_dict("training_state", training_state))
    files.atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta), "checkpoint")


def load_checkpoint(path, *, map_location="cpu", return_state=False):
    """Read a checkpoint written by `save_checkpoint` -> (model, tokenizer or None).

    With return_state=True, returns (model, tokenizer, state) where state holds "metrics",
    "optimizer" (a state dict for optimizer.load_state_dict, or None) and "training" (a dict).
    The model comes back in eval mode, in float32, on `map_location`.
    """
    files.require_path("path", path)
    device = device_of(map_location)
    tensors, meta = read_file(path)
    cls, config = _model_class_and_config(path, meta)
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    check_weights(path, cls, config, weights)  # before building anything of the size the header asks for
    tokenizer = _tokenizer(path, meta, config)
    model = cls(config)
    model.load_state_dict(weights, strict=False)  # strict=False: a tied tensor is stored under one name
    model.to(device).eval()
    if not return_state:
        return model, tokenizer
    training = header_json(path, meta, "training_state", {})
    training |= {k[len("training.") :]: v for k, v in tensors.items() if k.startswith("training.")}
    metrics, optimizer = header_json(path, meta, "metrics", {}), optimizer_state(path, tensors, meta)
    return model, tokenizer, {"metrics": metrics, "optimizer": optimizer, "training": training}


def read_metadata(path) -> dict:
    """The checkpoint's header (model class, config, metrics...) without loading any weights."""
    files.require_path("path", path)
    _, meta = read_file(path, header_only=True)
    return {k: (header_json(path, meta, k) if k in _DICT_FIELDS else v) for k, v in meta.items()}


def _model_class_and_config(path, meta):
    cls = MODEL_CLASSES.get(meta.get("model_class"))
    if cls is None:
        raise CheckpointError(
            f"{str(path)!r} has a damaged header (model_class={describe(meta.get('model_class'))}; "
            f"expected one of {sorted(MODEL_CLASSES)})"
        )
    stored = header_json(path, meta, "config")
    try:
        return cls, TransformerConfig.from_dict(stored)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{str(path)!r} has a damaged header ({e})") from None


def _tokenizer(path, meta, config):
    stored = header_json(path, meta, "tokenizer")
    if stored is None:
        return None
    try:
        tokenizer = tokenizer_from_dict(stored)
    except CheckpointError as e:
        raise CheckpointError(f"{str(path)!r}: {e}") from None
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"{str(path)!r}: tokenizer vocab_size={tokenizer.vocab_size} does not match the model's "
            f"vocab_size={config.vocab_size}"
        )
    return tokenizer


def _require_dict(name, value) -> dict:
    if value is not None and not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict (or None), got {describe(value)}")
    return value or {}


def _json(name, value) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{name} must hold only JSON values (numbers, strings, lists, dicts) to be saved, got "
            f"{describe(value)} ({e})"
        ) from None


def _add_optimizer(tensors: dict, meta: dict, optimizer) -> None:
    state = optimizer.state_dict()
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            tensors[f"optimizer.{idx}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    meta["optimizer_param_groups"] = _json("the optimizer's param_groups", state["param_groups"])


def _add_training_state(tensors: dict, meta: dict, training_state: dict) -> None:
    plain = {}
    for key, value in training_state.items():
        if isinstance(value, torch.Tensor):
            tensors[f"training.{key}"] = value.detach().cpu().contiguous()
        else:
            plain[key] = value
    meta["training_state"] = _json("training_state", plain)


def _unique_state(model) -> dict:
    """state_dict without the second copy of tied tensors (safetensors refuses shared storage)."""
    seen, out = set(), {}
    for key, value in model.state_dict().items():
        ptr = (value.data_ptr(), tuple(value.shape))  # tied weights are the same tensor
        if ptr in seen:
            continue
        seen.add(ptr)
        out[key] = value
    return out


def _stored(name: str, t: torch.Tensor, dtype) -> torch.Tensor:
    """The weight `name` as the file stores it: on the CPU, in `dtype` (refused if a value would overflow)."""
    t = t.detach().cpu()
    if dtype is not None and t.is_floating_point() and t.dtype != dtype:
        converted = t.to(dtype)
        overflow = converted.isinf() & t.isfinite()
        if overflow.any():
            raise ValueError(
                f"cannot save the weight {name!r} in dtype={dtype}: it holds "
                f"{t[overflow].abs().max().item():g}, "
                f"beyond {dtype}'s largest value {torch.finfo(dtype).max:g}, so it would be stored as inf; "
                "save in torch.float32 or torch.bfloat16"
            )
        t = converted
    return t.contiguous()
