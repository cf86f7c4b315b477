"""Saving and loading models safely: one safetensors file, never a pickle.

A checkpoint is a single `.safetensors` file:
- tensors: the model's weights (tied weights stored once), and for resuming training the
  optimizer's moments and the random-number-generator states;
- header metadata (JSON strings): the model class, its `TransformerConfig`, the tokenizer,
  the training step and metrics.

Why not `torch.save`? It pickles, and unpickling a file can run any code inside it: a
checkpoint passed around a class must not be able to do that. safetensors files hold only
tensors and strings. Why one file? It can be written to a temporary name and renamed into
place in one atomic step, so a save interrupted halfway never damages the previous checkpoint.

Used by the trainer, the command line and `load_pretrained` (tools/); notebook 06 shows a save and load.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..config import TransformerConfig
from ..errors import CheckpointError, describe
from ..models import GPT, MaskedLM, Seq2SeqTransformer
from ..tokenizers import tokenizer_from_dict
from .tying import tied_weights

FORMAT = "minitransformer-checkpoint"
FORMAT_VERSION = 1
MODEL_CLASSES = {cls.__name__: cls for cls in (GPT, MaskedLM, Seq2SeqTransformer)}
_PICKLE_OR_ZIP = (b"\x80", b"PK\x03\x04")  # pickle protocol 2+ / torch.save's zip container


def save_checkpoint(
    path, model, tokenizer=None, *, optimizer=None, training_state=None, metrics=None, dtype=None
):
    """Write `model` (and optionally its tokenizer and resumable training state) to `path` atomically.

    optimizer: a torch optimizer whose state is saved for exact resume.
    training_state: dict of JSON values (e.g. step) plus torch tensors (e.g. RNG states).
    dtype: store floating weights in this dtype (torch.float16 / bfloat16 halve the file).
    """
    cls_name = type(model).__name__
    if cls_name not in MODEL_CLASSES or not isinstance(getattr(model, "config", None), TransformerConfig):
        raise TypeError(f"model must be one of {sorted(MODEL_CLASSES)}, got {describe(model)}")
    tensors = {f"model.{k}": _stored(v, dtype) for k, v in _unique_state(model).items()}
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "model_class": cls_name,
        "config": json.dumps(model.config.to_dict()),
        "metrics": json.dumps(metrics or {}),
    }
    if tokenizer is not None:
        meta["tokenizer"] = json.dumps(tokenizer.to_dict())
    if optimizer is not None:
        state = optimizer.state_dict()
        for idx, per_param in state["state"].items():
            for key, value in per_param.items():
                tensors[f"optimizer.{idx}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        meta["optimizer_param_groups"] = json.dumps(state["param_groups"])
    if training_state is not None:
        plain = {}
        for key, value in training_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"training.{key}"] = value.detach().cpu().contiguous()
            else:
                plain[key] = value
        meta["training_state"] = json.dumps(plain)
    _atomic_write(Path(path), tensors, meta)


def load_checkpoint(path, *, map_location="cpu", return_state=False):
    """Read a checkpoint written by `save_checkpoint` -> (model, tokenizer or None).

    With return_state=True, returns (model, tokenizer, state) where state holds "metrics",
    "optimizer" (a state dict for optimizer.load_state_dict, or None) and "training" (a dict).
    The model comes back in eval mode, in float32, on `map_location`.
    """
    tensors, meta = _read(Path(path), map_location)
    try:
        cls = MODEL_CLASSES[meta["model_class"]]
        config = TransformerConfig.from_dict(json.loads(meta["config"]))
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{str(path)!r} has a damaged header ({e})") from None
    model = cls(config).to(map_location)
    weights = {k[len("model.") :]: v.float() for k, v in tensors.items() if k.startswith("model.")}
    _load_weights(model, weights, path)
    tokenizer = tokenizer_from_dict(json.loads(meta["tokenizer"])) if "tokenizer" in meta else None
    if tokenizer is not None and tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"{str(path)!r}: tokenizer vocab_size={tokenizer.vocab_size} does not match the model's "
            f"vocab_size={config.vocab_size}"
        )
    model.eval()
    if not return_state:
        return model, tokenizer
    state = {"metrics": json.loads(meta.get("metrics", "{}")), "optimizer": _optimizer_state(tensors, meta)}
    training = json.loads(meta.get("training_state", "{}"))
    training |= {k[len("training.") :]: v for k, v in tensors.items() if k.startswith("training.")}
    state["training"] = training
    return model, tokenizer, state


def read_metadata(path) -> dict:
    """The checkpoint's header (model class, config, metrics...) without loading any weights."""
    _, meta = _read(Path(path), "cpu", header_only=True)
    return {
        k: (json.loads(v) if k in ("config", "metrics", "tokenizer", "training_state") else v)
        for k, v in meta.items()
    }


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


def _stored(t: torch.Tensor, dtype):
    t = t.detach().cpu()
    if dtype is not None and t.is_floating_point():
        t = t.to(dtype)
    return t.contiguous()


def _atomic_write(path: Path, tensors: dict, meta: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # temporary files are owner-only; give the file the usual permissions
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # the bytes are on disk before the rename makes them visible
        os.replace(tmp, path)  # atomic: readers see the old file or the new one, never half of one
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: Path, map_location, header_only=False):
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}")
    if path.is_dir():
        raise CheckpointError(
            f"{str(path)!r} is a folder; a minitransformer checkpoint is one .safetensors file"
        )
    _check_looks_like_safetensors(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = {} if header_only else load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{str(path)!r} is not a readable safetensors file (truncated or damaged?): {e}"
        ) from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is a safetensors file but not a minitransformer checkpoint")
    if int(meta.get("format_version", "0")) > FORMAT_VERSION:
        raise CheckpointError(f"{str(path)!r} was written by a newer minitransformer; please upgrade")
    return tensors, meta


def _check_looks_like_safetensors(path: Path):
    """safetensors = 8-byte little-endian header size, then a JSON header; refuse anything else early."""
    with open(path, "rb") as f:
        head = f.read(9)
    size = int.from_bytes(head[:8], "little")
    if len(head) == 9 and head[8:9] == b"{" and 8 + size <= path.stat().st_size:
        return
    if head.startswith(_PICKLE_OR_ZIP):
        raise CheckpointError(
            f"{str(path)!r} looks like a pickle / torch.save file. minitransformer never unpickles files, "
            "because unpickling can run code hidden inside them; save checkpoints with save_checkpoint."
        )
    raise CheckpointError(f"{str(path)!r} is not a readable safetensors file (truncated or damaged?)")


def _load_weights(model, weights, path):
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = set(missing)
    for names in tied_weights(model):  # the file holds a tied tensor once: one name loaded fills all
        if not set(names) <= missing:
            missing -= set(names)
    if missing or unexpected:
        raise CheckpointError(
            f"{str(path)!r} does not fit a {type(model).__name__} with its config: missing "
            f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )


def _optimizer_state(tensors, meta):
    if "optimizer_param_groups" not in meta:
        return None
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": json.loads(meta["optimizer_param_groups"])}
