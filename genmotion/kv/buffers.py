"""Static key/value cache for one attention layer: preallocated buffers written in place (gpt-fast style).

Keys are stored before RoPE, with their absolute positions alongside (per batch row and head), so
windows slide without bound and heads can be evicted independently. Two layouts:
* linear: entries fill slots [0, capacity); appending past the end is an error (evict or crop first);
* ring (`ring=True`): the first `sink` entries are never overwritten, the rest is a ring of
  `capacity - sink` slots holding the newest entries (StreamingLLM-style attention sink).
Views (`keys`, `values`, `positions`) are always in temporal order. Axes: B batch, H heads, T new
entries, L valid entries, D head dim, K kept entries, A position axes (only when `position_axes > 0`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import torch

from genmotion.errors import UsageError

__all__ = ["KVCache"]


class KVCache:
    """Per-layer (B, H, capacity, D) key and value buffers plus (B, H, capacity[, A]) positions."""

    def __init__(
        self,
        batch: int,
        heads: int,
        capacity: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        ring: bool = False,
        sink: int = 0,
        position_axes: int = 0,
        position_dtype: torch.dtype = torch.long,
    ) -> None:
        if min(batch, heads, capacity, head_dim) <= 0:
            raise UsageError(f"KV cache sizes must be positive, got batch={batch} heads={heads} capacity={capacity}")
        if ring and not 0 <= sink < capacity:
            raise UsageError(
                f"ring KV cache with capacity {capacity} cannot keep a sink of {sink} entries",
                why="the ring needs at least one slot after the sink",
                fix="raise capacity above sink (capacity = sink + window)",
            )
        if not ring and sink:
            raise UsageError("an attention sink needs ring mode", fix="pass ring=True together with sink=...")
        pos_shape = (batch, heads, capacity) + ((position_axes,) if position_axes else ())
        self.k = torch.zeros(batch, heads, capacity, head_dim, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.k)
        self.pos = torch.zeros(pos_shape, dtype=position_dtype, device=device)
        self.ring, self.sink, self.position_axes = ring, sink, position_axes
        self._total = 0  # entries written since reset (ring slots are derived from it)
        self._next_position: int | None = 0  # None: positions were given; derive from the buffer when needed
        self._shared_positions = True  # every batch row and head holds the same positions (RoPE computed once)
        self._derived: dict[Hashable, Any] = {}  # values computed from the current entries (see `derived`)

    # ---- sizes -------------------------------------------------------------------------------
    @property
    def batch(self) -> int:
        return self.k.shape[0]

    @property
    def heads(self) -> int:
        return self.k.shape[1]

    @property
    def capacity(self) -> int:
        return self.k.shape[2]

    @property
    def head_dim(self) -> int:
        return self.k.shape[3]

    @property
    def length(self) -> int:
        """Valid entries per head (the same for every head)."""
        return min(self._total, self.capacity)

    def nbytes(self) -> int:
        """Exact bytes held by the key, value and position buffers."""
        return self.k.nbytes + self.v.nbytes + self.pos.nbytes

    def valid_nbytes(self) -> int:
        """Bytes of the valid entries only (what an unpadded cache would hold)."""
        return self.nbytes() * self.length // self.capacity

    def reset(self) -> None:
        """Forget every entry (buffers are reused, not freed)."""
        self._total, self._next_position, self._shared_positions = 0, 0, True
        self.changed()

    # ---- values derived from the entries -------------------------------------------------------
    def derived(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """`make()` computed once while the entries stay the same (e.g. RoPE'd keys read by every denoising
        step of a chunk); every method that changes entries drops it."""
        if key not in self._derived:
            self._derived[key] = make()
        return self._derived[key]

    def changed(self) -> None:
        """Drop derived values; call it after writing the buffers (`k`, `v`, `pos`) directly."""
        self._derived.clear()

    # ---- views in temporal order --------------------------------------------------------------
    def _order(self) -> torch.Tensor | None:
        """Slot indices in temporal order, or None when slots [0, length) already are."""
        if self._total <= self.capacity:
            return None
        window = self.capacity - self.sink
        start = (self._total - self.sink) % window
        if start == 0:
            return None
        ring = self.sink + (torch.arange(window, device=self.k.device) + start) % window
        return torch.cat([torch.arange(self.sink, device=self.k.device), ring])

    def _view(self, buf: torch.Tensor) -> torch.Tensor:
        order = self._order()
        return buf[:, :, : self.length] if order is None else buf.index_select(2, order)

    @property
    def keys(self) -> torch.Tensor:
        """(B, H, L, D) keys before RoPE; a view in linear layout, a gathered copy once a ring has wrapped."""
        return self._view(self.k)

    @property
    def values(self) -> torch.Tensor:
        """(B, H, L, D)."""
        return self._view(self.v)

    @property
    def positions(self) -> torch.Tensor:
        """(B, H, L) absolute positions of the valid entries ((B, H, L, A) with position axes)."""
        return self._view(self.pos)

    @property
    def rope_positions(self) -> torch.Tensor:
        """`positions` shaped (1, 1, L[, A]) while every row and head shares them (RoPE computed once), else
        (B, H, L[, A])."""
        return self._view(self.pos[:1, :1]) if self._shared_positions else self.positions

    def head(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keys (B, L, D), values (B, L, D) and positions (B, L[, A]) of one head."""
        return self.keys[:, index], self.values[:, index], self.positions[:, index]

    # ---- writing -------------------------------------------------------------------------------
    def _positions_for(self, positions: torch.Tensor | None, count: int) -> tuple[torch.Tensor, bool]:
        """New entries' positions broadcast to (B, H, T[, A]) and whether they are the same for every row and head.

        None continues after the last position.
        """
        B, H = self.batch, self.heads
        tail = (self.position_axes,) if self.position_axes else ()
        if positions is None:
            if self.position_axes:
                raise UsageError(
                    "this KV cache stores multi-axis positions, so append needs them",
                    fix="pass positions_T shaped (T, A) or (B, H, T, A)",
                )
            start = self._next_position
            if start is None:
                start = int(self.positions.max()) + 1 if self.length else 0
            pos = torch.arange(start, start + count, device=self.k.device, dtype=self.pos.dtype)
        else:
            pos = positions.to(device=self.k.device, dtype=self.pos.dtype)
        if pos.shape[-1 - len(tail) :] != (count, *tail):
            raise UsageError(
                f"positions shaped {tuple(pos.shape)} do not match {count} new entries",
                fix=f"pass positions shaped (T{', A' if tail else ''}) or (B, H, T{', A' if tail else ''})",
            )
        shared = all(n == 1 for n in pos.shape[: -1 - len(tail)])
        return pos.expand(B, H, count, *tail), shared

    def _check_entries(self, k_BHTD: torch.Tensor, v_BHTD: torch.Tensor) -> int:
        expected = (self.batch, self.heads, k_BHTD.shape[2], self.head_dim)
        if tuple(k_BHTD.shape) != expected or v_BHTD.shape != k_BHTD.shape:
            raise UsageError(
                f"KV cache expects keys/values shaped (B={self.batch}, H={self.heads}, T, D={self.head_dim}), "
                f"got {tuple(k_BHTD.shape)} and {tuple(v_BHTD.shape)}"
            )
        return k_BHTD.shape[2]

    def _advance(self, count: int, positions_given: bool) -> None:
        self._total += count
        self.changed()
        if positions_given:
            self._next_position = None
        elif self._next_position is not None:
            self._next_position += count

    def append(self, k_BHTD: torch.Tensor, v_BHTD: torch.Tensor, positions_T: torch.Tensor | None = None) -> None:
        """Write T new entries in place. positions_T: (T,) or (B, H, T) (with a trailing A axis if multi-axis)."""
        count = self._check_entries(k_BHTD, v_BHTD)
        pos, shared = self._positions_for(positions_T, count)
        self._shared_positions &= shared
        if not self.ring:
            if self._total + count > self.capacity:
                raise UsageError(
                    f"KV cache is full: capacity {self.capacity}, holding {self._total}, appending {count}",
                    fix="allocate a larger capacity, use ring mode (ring=True, sink=...), or evict with keep()/crop()",
                )
            s = slice(self._total, self._total + count)
            self.k[:, :, s], self.v[:, :, s], self.pos[:, :, s] = k_BHTD, v_BHTD, pos
        else:
            window = self.capacity - self.sink
            n = torch.arange(self._total, self._total + count, device=self.k.device)
            survives = (n < self.sink) | (n >= self._total + count - window)  # later entries of this call win
            n = n[survives]
            slots = torch.where(n < self.sink, n, self.sink + (n - self.sink) % window)
            self.k.index_copy_(2, slots, k_BHTD[:, :, survives])
            self.v.index_copy_(2, slots, v_BHTD[:, :, survives])
            self.pos.index_copy_(2, slots, pos[:, :, survives])
        self._advance(count, positions_T is not None)

    def extend(
        self,
        k_BHTD: torch.Tensor,
        v_BHTD: torch.Tensor,
        positions_T: torch.Tensor | None = None,
        *,
        commit: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keys, values and positions of the cache followed by T new entries, for one attention call.

        Returns (B, H, L + T, D), (B, H, L + T, D) and positions broadcastable to (B, H, L + T[, A]) (shaped
        (1, 1, L + T[, A]) while every row and head shares them, so RoPE is computed once). With `commit`
        the new entries are appended; without it they are read once and forgotten (a read-only cache,
        e.g. a noisy chunk attending to clean context). No copy while the entries fit after the last
        slot; once a ring is full the context is copied first, so new queries still see every entry the
        cache held before the write.
        """
        count = self._check_entries(k_BHTD, v_BHTD)
        pos, shared = self._positions_for(positions_T, count)
        shared &= self._shared_positions
        if self._total + count <= self.capacity:
            end = self._total + count
            s = slice(self._total, end)
            self.k[:, :, s], self.v[:, :, s], self.pos[:, :, s] = k_BHTD, v_BHTD, pos
            out = self.k[:, :, :end], self.v[:, :, :end], (self.pos[:1, :1] if shared else self.pos)[:, :, :end]
            if commit:
                self._advance(count, positions_T is not None)
                self._shared_positions = shared
            return out
        out = (
            torch.cat([self.keys, k_BHTD], dim=2),
            torch.cat([self.values, v_BHTD], dim=2),
            torch.cat([self.rope_positions, pos[:1, :1]] if shared else [self.positions, pos], dim=2),
        )
        if commit:
            self.append(k_BHTD, v_BHTD, positions_T)
        return out

    # ---- eviction ------------------------------------------------------------------------------
    def keep(self, index: torch.Tensor) -> None:
        """Keep the entries at `index` (into the temporal view), per head, in the given order.

        index: (B, H, K), (H, K) or (K,) integers in [0, length). Afterwards the cache holds K entries in
        linear layout; in ring mode the first `sink` kept entries become the sink.
        """
        B, H, L, D = self.batch, self.heads, self.length, self.head_dim
        idx = index.to(device=self.k.device, dtype=torch.long)
        if idx.dim() not in (1, 2, 3) or idx.shape[-1] > self.capacity:
            raise UsageError(
                f"keep index shaped {tuple(idx.shape)} is not (B, H, K), (H, K) or (K,) with K <= capacity"
            )
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= L):
            raise UsageError(f"keep index out of range: the cache holds {L} entries", fix="index into [0, length)")
        K = idx.shape[-1]
        idx = idx.expand(B, H, K)
        k = self.keys.gather(2, idx.unsqueeze(-1).expand(B, H, K, D))
        v = self.values.gather(2, idx.unsqueeze(-1).expand(B, H, K, D))
        pos_view = self.positions
        pos_idx = idx if not self.position_axes else idx.unsqueeze(-1).expand(B, H, K, self.position_axes)
        pos = pos_view.gather(2, pos_idx)
        self.k[:, :, :K], self.v[:, :, :K], self.pos[:, :, :K] = k, v, pos
        self._total = K
        self._shared_positions &= index.dim() == 1
        self.changed()

    def crop(self, length: int) -> None:
        """Keep only the first `length` entries (in temporal order), e.g. to roll back a speculative step."""
        if not 0 <= length <= self.length:
            raise UsageError(f"cannot crop a KV cache holding {self.length} entries to {length}")
        if self._order() is None:
            self._total = length
            self.changed()
        else:
            self.keep(torch.arange(length, device=self.k.device))
        self._next_position = None
