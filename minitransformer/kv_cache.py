"""The key/value cache: what incremental decoding remembers of the tokens it has already read.

Decoding one token at a time, each new token's query needs the keys and values of *all* earlier
tokens. Recomputing them costs O(T) per step (O(T²) in all); keeping them here makes each step
O(1) in projections. `KVCache` serves one attention layer, `Cache` a whole model.

Used by attention.py, the models and generation; notebook 04 measures what it saves.
"""

from __future__ import annotations

import torch

from .errors import ShapeError


class KVCache:
    """The keys and values of the tokens seen so far, for one attention layer.

    Storage is allocated once, for max_len positions, on first use; `keys` and `values` are views
    of the filled part. A cache serves one decoding run, so it also keeps what the layer's one-token
    `step` reads from the weights (`step_weights`): its keys were computed with those weights anyway.
    """

    def __init__(self, max_len: int):
        self.max_len = max_len
        self.length = 0
        self._k = self._v = None  # (B, H, max_len, D) once allocated
        self._spare = None  # a second (keys, values) buffer for `reorder`
        self._step_weights = {}

    def step_weights(self, module):
        """`module.step_weights()`, gathered at the first step of the run and kept for the rest."""
        weights = self._step_weights.get(module)
        if weights is None:
            weights = self._step_weights[module] = module.step_weights()
        return weights

    def append(self, k, v):
        """Store k, v of shape (B, H, T, D); return all keys and values so far, (B, H, length, D)."""
        t = k.shape[-2]
        self._check_room(t)
        if self._k is None:
            self._k = k.new_empty((*k.shape[:-2], self.max_len, k.shape[-1]))
            self._v = v.new_empty((*v.shape[:-2], self.max_len, v.shape[-1]))
        self._k.narrow(-2, self.length, t).copy_(k)  # positions length .. length + t
        self._v.narrow(-2, self.length, t).copy_(v)
        self.length += t
        return self.keys, self.values

    def writable(self, t: int):
        """The whole (B, H, max_len, D) key and value storage, for a step that writes its t new positions
        there itself (native_step.c), after checking they fit; it then calls `advance(t)`."""
        self._check_room(t)
        return self._k, self._v

    def advance(self, t: int):
        """Count t more positions as filled (their keys and values were written through `writable`)."""
        self.length += t

    def _check_room(self, t: int):
        if self.length + t > self.max_len:
            raise ShapeError(f"KV cache full: {self.length} + {t} tokens exceed max_len={self.max_len}")

    def crop(self, length: int):
        """Forget the positions from `length` on (assisted decoding drops the drafts the model rejected)."""
        self.length = min(self.length, length)

    @property
    def keys(self):
        return self._k.narrow(-2, 0, self.length)  # (B, H, length, D), a view

    @property
    def values(self):
        return self._v.narrow(-2, 0, self.length)

    def reorder(self, index: torch.Tensor):
        """Keep batch rows `index` (beam search: each surviving beam takes its parent's cache).

        Only the filled part is gathered, in one pass, into a second buffer that then takes the
        first one's place: gathering in place would need a temporary copy, which was 3x slower.
        """
        if self._k is None:
            return
        if self._spare is None:
            self._spare = torch.empty_like(self._k), torch.empty_like(self._v)
        n = self.length
        for old, new in zip(self._k_v(), self._spare):
            torch.index_select(old.narrow(-2, 0, n), 0, index, out=new.narrow(-2, 0, n))
        self._spare, (self._k, self._v) = self._k_v(), self._spare

    def _k_v(self):
        return self._k, self._v

    def __repr__(self):
        return f"KVCache(length={self.length}, max_len={self.max_len})"


class Cache:
    """The KV caches of a whole model: one entry per layer (a KVCache, or a pair for seq2seq).

    `memory` holds what a decoder conditions on and computes once per generation: the encoder's
    output for a Seq2SeqTransformer, None for a decoder-only model.
    `fast_step` says whether one-token steps may take the model's fast path (models/gpt.py).
    """

    def __init__(self, layers: list, fast_step: bool = False):
        self.layers = layers
        self.memory = None
        self.fast_step = fast_step
        self.head = None  # what a fast step multiplies by for the logits, kept for the run
        self.native = None  # native_step.py's description of the model's step, made at its first step

    @property
    def length(self) -> int:
        """How many positions are cached (of the self-attention, for seq2seq)."""
        first = self.layers[0]
        return (first[0] if isinstance(first, tuple) else first).length

    def crop(self, length: int):
        for entry in self.layers:
            for c in entry if isinstance(entry, tuple) else (entry,):
                c.crop(length)

    def reorder(self, index: torch.Tensor):
        for entry in self.layers:
            for c in entry if isinstance(entry, tuple) else (entry,):
                c.reorder(index)

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)
