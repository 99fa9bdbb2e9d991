"""Cache state passed to a model as `cache=`: one KVCache per layer, and a per-chunk feature store.

The state is data created by the sampler or a cache policy, never a module flag. Whether a forward
writes its new keys/values is part of the state (`commit`): `state.read_only()` shares the same
buffers but makes attention read the cache and forget the new entries (a noisy chunk attending to
clean context).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import torch

from genmotion.errors import UsageError
from genmotion.kv.buffers import KVCache

__all__ = ["FeatureCache", "KVCacheParts", "LayeredKVCache"]


class KVCacheParts:
    """A cache made of several `KVCache`s (a model's layers, one layer's head groups): its bytes and its reset are
    those of its parts, `parts()`."""

    def parts(self) -> Sequence[KVCache]:
        raise NotImplementedError

    def nbytes(self) -> int:
        """Exact bytes held by every part's buffers."""
        return sum(c.nbytes() for c in self.parts())

    def valid_nbytes(self) -> int:
        """Bytes of the valid entries of every part."""
        return sum(c.valid_nbytes() for c in self.parts())

    def reset(self) -> None:
        for c in self.parts():
            c.reset()


class LayeredKVCache(KVCacheParts):
    """One `KVCache` per transformer layer; `cache[i]` is layer i's."""

    def __init__(self, layers: Sequence[KVCache], *, commit: bool = True) -> None:
        if not layers:
            raise UsageError("a layered KV cache needs at least one layer")
        self.layers: tuple[KVCache, ...] = tuple(layers)
        self.commit = commit

    @classmethod
    def allocate(
        cls,
        num_layers: int,
        batch: int,
        heads: int,
        capacity: int,
        head_dim: int,
        **kwargs: Any,
    ) -> LayeredKVCache:
        """`num_layers` fresh caches; `kwargs` go to every `KVCache` (dtype, device, ring, sink, ...)."""
        return cls([KVCache(batch, heads, capacity, head_dim, **kwargs) for _ in range(num_layers)])

    def read_only(self) -> LayeredKVCache:
        """The same buffers, but forwards read them without appending."""
        return LayeredKVCache(self.layers, commit=False)

    def __getitem__(self, layer: int) -> KVCache:
        return self.layers[layer]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[KVCache]:
        return iter(self.layers)

    @property
    def length(self) -> int:
        """Valid entries in layer 0 (layers differ only under per-layer eviction)."""
        return self.layers[0].length

    def parts(self) -> Sequence[KVCache]:
        return self.layers

    def keep(self, index: torch.Tensor) -> None:
        """Apply the same keep-index to every layer (see `KVCache.keep`); index layers one by one to differ."""
        for c in self.layers:
            c.keep(index)

    def crop(self, length: int) -> None:
        for c in self.layers:
            c.crop(length)


class FeatureCache:
    """Per-chunk stored tensors (outputs, residuals, embeddings) keyed by (chunk, name), for reuse across steps."""

    def __init__(self) -> None:
        self._store: dict[tuple[int, Hashable], torch.Tensor] = {}

    def put(self, chunk: int, name: Hashable, value: torch.Tensor) -> None:
        self._store[(chunk, name)] = value

    def get(self, chunk: int, name: Hashable) -> torch.Tensor | None:
        return self._store.get((chunk, name))

    def __contains__(self, key: tuple[int, Hashable]) -> bool:
        return key in self._store

    def drop_chunk(self, chunk: int) -> None:
        """Forget everything stored for `chunk` (e.g. once it is denoised)."""
        for key in [k for k in self._store if k[0] == chunk]:
            del self._store[key]

    def clear(self) -> None:
        self._store.clear()

    def __len__(self) -> int:
        return len(self._store)

    def nbytes(self) -> int:
        """Exact bytes of the stored tensors."""
        return sum(t.nbytes for t in self._store.values())
