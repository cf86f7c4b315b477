"""The checkpoint file format, and reading a file as the untrusted input it may be.

A safetensors file is an 8-byte little-endian header size, a JSON header (each tensor's dtype,
shape and byte offsets, plus "__metadata__": a dict of strings), then the tensors' bytes. Here:

- the file is opened once and read into memory, and the header and the tensors both come from
  those bytes: a training run that saves (renames a new file into place) while a notebook loads
  can never pair one save's header with another save's tensors;
- the header is at most MAX_HEADER_BYTES, and each JSON field in it is parsed with a clear error;
- the tensors are compared with the model that the header's config describes, built on the
  `meta` device (shapes without memory), before any real model is built: a 17 KB file that
  asks for a model of 800 GB fails at once, naming the mismatch;
- only floating-point weights load, and the position tables the config asks for are bounded.

checkpoints.py (save_checkpoint, load_checkpoint, read_metadata) is the public side.
"""

from __future__ import annotations

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as serialize
from torch.overrides import TorchFunctionMode

from ..errors import CheckpointError, describe
from ..files import loads_json, open_regular
from .tying import tied_weights

FORMAT = "minitransformer-checkpoint"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 32 * 2**20  # the package writes headers of a few KB (tokenizer included)
MAX_BUFFER_BYTES = 256 * 2**20  # tables a model computes (sinusoidal, RoPE), beyond the size of its weights
_PICKLE_OR_ZIP = (b"\x80", b"PK\x03\x04")  # pickle protocol 2+ / torch.save's zip container
_FOLDER_HINT = "; a minitransformer checkpoint is one .safetensors file"


def save_file(tensors: dict, filename, metadata: dict | None = None) -> None:
    """Write `tensors` and `metadata` to `filename` in the safetensors format, in place.

    safetensors' own save_file writes a temporary file of its own and renames it: a kill leaves
    that file behind under a name no one can tell apart, and the rename resets the permissions.
    files.atomic_write already gives us a temporary file, so this writes straight into it.
    """
    data = serialize(tensors, metadata=metadata)
    with open(filename, "wb") as f:
        f.write(data)


def read_file(path, header_only=False) -> tuple[dict, dict]:
    """-> (tensors on the CPU, header metadata), both from one read of the regular file at `path`."""
    with open_regular(path, "checkpoint", _FOLDER_HINT) as f:
        head = f.read(9)
        size = int.from_bytes(head[:8], "little")
        _check_looks_like_safetensors(path, head, size)
        f.seek(0)
        data = f.read(8 + size) if header_only else f.read()  # the header (and tensors): one open file
    if len(data) < 8 + size:
        raise CheckpointError(f"{str(path)!r} is not a readable safetensors file (truncated or damaged?)")
    meta = _metadata(path, data[8 : 8 + size])
    if header_only:
        return {}, meta
    try:
        return load_tensors(data), meta
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"{str(path)!r} is not a readable safetensors file (truncated or damaged?): {e}"
        ) from None


def _check_looks_like_safetensors(path, head: bytes, size: int):
    """safetensors = 8-byte little-endian header size, then a JSON header; refuse anything else early."""
    if len(head) == 9 and head[8:9] == b"{" and 2 <= size <= MAX_HEADER_BYTES:
        return
    if head.startswith(_PICKLE_OR_ZIP):
        raise CheckpointError(
            f"{str(path)!r} looks like a pickle / torch.save file. minitransformer never unpickles files, "
            "because unpickling can run code hidden inside them; save checkpoints with save_checkpoint."
        )
    if len(head) == 9 and head[8:9] == b"{" and size > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"{str(path)!r} declares a header of {size:,} bytes; a checkpoint header may have at most "
            f"{MAX_HEADER_BYTES:,}"
        )
    raise CheckpointError(f"{str(path)!r} is not a readable safetensors file (truncated or damaged?)")


def _metadata(path, header: bytes) -> dict:
    """The header's "__metadata__" strings, after checking that this is a checkpoint we can read."""
    where = f"{str(path)!r}: the safetensors header"
    parsed = loads_json(header, where, "valid JSON (truncated or damaged?)")
    meta = parsed.get("__metadata__") if isinstance(parsed, dict) else None
    meta = meta or {}
    if not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        raise CheckpointError(f"{str(path)!r} is not a readable checkpoint: its metadata is not strings")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is a safetensors file but not a minitransformer checkpoint")
    version = meta.get("format_version", "0")
    if not (version.isascii() and version.isdigit()):
        raise CheckpointError(
            f"{str(path)!r} has format_version={version!r} in its header; it must be a whole number "
            f"such as '{FORMAT_VERSION}'"
        )
    if int(version) > FORMAT_VERSION:
        raise CheckpointError(f"{str(path)!r} was written by a newer minitransformer; please upgrade")
    return meta


def header_json(path, meta: dict, field: str, default=None, kind: type = dict):
    """The JSON value of header field `field` (`default` if absent), which must be a `kind`."""
    if field not in meta:
        return default
    value = loads_json(meta[field], f"{str(path)!r}: the header field {field!r}")
    if not isinstance(value, kind):
        raise CheckpointError(
            f"{str(path)!r}: the header field {field!r} must hold a JSON "
            f"{'object' if kind is dict else 'list'}, got {describe(value)}"
        )
    return value


def check_weights(path, cls, config, weights: dict) -> None:
    """The file's weights must be exactly the floating-point tensors of `cls(config)`, shape for shape.

    Checked on a `meta` model, which has every shape and no memory, so nothing big is built first.
    """
    if config.n_layers > len(weights):  # each block has tensors of its own; the file holds fewer
        raise CheckpointError(
            f"{str(path)!r} does not fit its config: n_layers={config.n_layers}, but the file holds "
            f"only {len(weights)} weight tensors"
        )
    try:
        skeleton = _skeleton(cls, config)
    except (RuntimeError, TypeError, ValueError, OverflowError) as e:  # sizes beyond what torch can index
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{str(path)!r}: no {cls.__name__} fits its config ({reason})") from None
    expected = skeleton.state_dict()
    _check_buffers(path, skeleton, weights)
    missing, unexpected = set(expected) - set(weights), sorted(set(weights) - set(expected))
    for names in tied_weights(skeleton):  # the file holds a tied tensor once: one name fills all
        if not set(names) <= missing:
            missing -= set(names)
    if missing or unexpected:
        raise CheckpointError(
            f"{str(path)!r} does not fit a {cls.__name__} with its config: missing "
            f"{sorted(missing)[:5]}, unexpected {unexpected[:5]}"
        )
    for name in expected:
        tensor = weights.get(name)
        if tensor is None:  # the second name of a tied weight
            continue
        if not tensor.is_floating_point():
            raise CheckpointError(
                f"{str(path)!r}: the weight {name!r} has dtype {tensor.dtype}; weights must be floating point"
            )
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{str(path)!r}: the weight {name!r} has shape {tuple(tensor.shape)}, but the header's "
                f"config (d_model={config.d_model}, vocab_size={config.vocab_size}, ...) needs "
                f"{tuple(expected[name].shape)}"
            )


def _skeleton(cls, config):
    """cls(config) on the `meta` device: every shape, no memory, and no random initialisation.

    Skipping the initialisation is not only faster: torch has no compiled meta version of normal_,
    and its Python fallback imports sympy and friends, over a second the first time.
    """
    with torch.device("meta"), _NoRandomInit():
        return cls(config)


class _NoRandomInit(TorchFunctionMode):
    """Inside it, normal_/uniform_-style initialisers leave their tensor as it is."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "").endswith(("normal_", "uniform_")):
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def _check_buffers(path, skeleton, weights: dict) -> None:
    """Buffers the model computes itself (position tables) cost memory that no tensor in the file shows."""
    extra = sum(b.numel() * b.element_size() for b in skeleton.buffers())
    stored = sum(t.numel() * 4 for t in weights.values())  # as float32 parameters
    if extra > stored + MAX_BUFFER_BYTES:
        raise CheckpointError(
            f"{str(path)!r}: its config (max_len={skeleton.config.max_len}, pos_encoding="
            f"{skeleton.config.pos_encoding!r}) needs {extra:,} bytes of position tables, more than the "
            f"weights ({stored:,} bytes) plus {MAX_BUFFER_BYTES:,}"
        )


def optimizer_state(path, tensors: dict, meta: dict) -> dict | None:
    """The optimizer's state dict, from the tensors "optimizer.<param index>.<name>" and the header."""
    groups = header_json(path, meta, "optimizer_param_groups", kind=list)
    if groups is None:
        return None
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, idx, name = (key.split(".", 2) + ["", ""])[:3]
            if not (idx.isascii() and idx.isdigit() and name):
                raise CheckpointError(
                    f"{str(path)!r}: the tensor {key!r} is not a valid optimizer entry "
                    "(expected optimizer.<parameter index>.<name>)"
                )
            state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": groups}


def device_of(map_location) -> torch.device:
    """torch.device(map_location), refused with a clear message if this machine cannot hold tensors there."""
    try:
        device = torch.device(map_location)
        torch.empty(0, device=device)  # e.g. "cuda" on a build or a machine without CUDA fails here
    except (RuntimeError, TypeError, ValueError, AssertionError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(
            f"map_location={describe(map_location)} is not a device this machine can use ({reason}); "
            "use map_location='cpu'"
        ) from None
    if device.type == "meta":
        raise ValueError("map_location='meta' would load no weights at all; use map_location='cpu'")
    return device
