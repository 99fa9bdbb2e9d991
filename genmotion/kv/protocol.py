"""The cache-policy protocol of the chunked causal flow loop, what a flow model must offer it, and the one base
class and stats type of every cache policy (the next-scale loop's `ScalePolicy`s derive from it too).

A policy decides how each denoising evaluation of the current chunk runs the model (over all context,
or against a KV cache) and what happens once a chunk is clean. Every policy counts its work in
`PolicyStats` and reports `bytes_held()`, so benchmark ratios come for free. Axes: B batch,
L tokens (whole frames of `tokens_per_frame`), C latent channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

from genmotion.errors import UsageError
from genmotion.kv.layered import LayeredKVCache

__all__ = ["CachePolicy", "FlowModel", "FrameLayout", "PolicyBase", "PolicyStats"]


class FlowModel(Protocol):
    """A velocity model over frame tokens; `TinyFlowModel` is the reference implementation.

    `positions_L` are frame indices (tokens of a frame share one); mask "causal" is block-causal by frame,
    or a boolean (L, S) tensor over [cache + new tokens]. With `cache`, each layer attends to its cached
    entries followed by the new tokens and appends them when `cache.commit`.
    """

    def __call__(
        self,
        x_BLC: torch.Tensor,
        t_BL: torch.Tensor,
        positions_L: torch.Tensor,
        *,
        cache: LayeredKVCache | None = ...,
        mask: Any = ...,
    ) -> torch.Tensor: ...

    def new_cache(self, batch: int, capacity: int, **kwargs: Any) -> LayeredKVCache: ...


@dataclass(frozen=True, kw_only=True)
class FrameLayout:
    """How latent frames become tokens: `tokens_per_frame` tokens of `channels` channels; chunks of frames."""

    tokens_per_frame: int
    channels: int
    frames_per_chunk: int = 1

    def __post_init__(self) -> None:
        if min(self.tokens_per_frame, self.channels, self.frames_per_chunk) <= 0:
            raise UsageError(f"frame layout sizes must be positive, got {self}")

    @property
    def chunk_tokens(self) -> int:
        """Tokens of one chunk: `frames_per_chunk` frames of `tokens_per_frame`."""
        return self.frames_per_chunk * self.tokens_per_frame

    def frame_ids(self, start_frame: int, num_tokens: int, device: torch.device | None = None) -> torch.Tensor:
        """(L,) frame index of each token of a run of whole frames starting at `start_frame`."""
        return start_frame + torch.arange(num_tokens, device=device) // self.tokens_per_frame


@dataclass(kw_only=True)
class PolicyStats:
    """What every cache policy reports, flow or next-scale: work counters (model calls made and avoided, tokens
    pushed through the model, the compute proxy) and memory (bytes of the preallocated buffers, the most held
    at once, and per step the bytes carried to the next one, after eviction)."""

    forwards_run: int = 0
    forwards_skipped: int = 0
    tokens_processed: int = 0
    allocated_bytes: int = 0
    peak_bytes: int = 0
    context_bytes: list[int] = field(default_factory=list)

    @property
    def max_context_bytes(self) -> int:
        return max(self.context_bytes, default=0)


@runtime_checkable
class CachePolicy(Protocol):
    """The strategy the flow loop consults; see `Recompute`, `SharedClean`, `RollingWindow`."""

    stats: PolicyStats

    @property
    def forwards_skipped(self) -> int: ...

    def start(self, model: FlowModel, layout: FrameLayout, *, batch: int, max_frames: int, like: torch.Tensor) -> None:
        """Allocate state for a new video of at most `max_frames` frames (`like` gives dtype and device)."""

    def begin_chunk(self, start_frame: int, num_evaluations: int, times: Sequence[float] | None = None) -> None:
        """A chunk starting at `start_frame` will now be denoised with `num_evaluations` model evaluations over
        the increasing flow times `times` ((steps + 1,): the solver's grid, when the loop knows it; policies
        that need no grid ignore it)."""

    def velocity(self, model: FlowModel, x_BLC: torch.Tensor, t: float, *, start_frame: int) -> torch.Tensor:
        """Velocity (B, L, C) of the noisy chunk x at flow time t, given the committed context."""

    def commit(self, model: FlowModel, clean_BLC: torch.Tensor, *, start_frame: int) -> None:
        """Frames starting at `start_frame` are final: make them context for everything after."""

    def bytes_held(self) -> int:
        """Exact bytes of the tensors this policy holds."""


class PolicyBase:
    """The one base of every cache policy, flow or next-scale: its `PolicyStats`, the counted model call of the
    flow loop (`_call`, with the frame layout set by `start`), and the memory records of a policy that holds a
    preallocated cache (`_allocated`, `_held`, `_carried`)."""

    def __init__(self) -> None:
        self.stats = PolicyStats()
        self.layout: FrameLayout | None = None

    @property
    def forwards_skipped(self) -> int:
        return self.stats.forwards_skipped

    def begin_chunk(self, start_frame: int, num_evaluations: int, times: Sequence[float] | None = None) -> None:
        return None

    def _layout(self) -> FrameLayout:
        if self.layout is None:
            raise UsageError(f"{type(self).__name__} was used before start()", fix="call policy.start(...) first")
        return self.layout

    def _call(
        self, model: FlowModel, x_BLC: torch.Tensor, t_BL: torch.Tensor, positions_L: torch.Tensor, **kw: Any
    ) -> torch.Tensor:
        self.stats.forwards_run += 1
        self.stats.tokens_processed += x_BLC.shape[0] * x_BLC.shape[1]
        return model(x_BLC, t_BL, positions_L, **kw)

    # ---- memory records ------------------------------------------------------------------------
    def _allocated(self, nbytes: int) -> None:
        """A new run starts with `nbytes` of preallocated cache: fresh stats."""
        self.stats = PolicyStats(allocated_bytes=nbytes)

    def _held(self, nbytes: int) -> None:
        """The cache now holds `nbytes` of valid entries (the peak is kept)."""
        self.stats.peak_bytes = max(self.stats.peak_bytes, nbytes)

    def _carried(self, nbytes: int) -> None:
        """`nbytes` are carried to the next step, after eviction."""
        self.stats.context_bytes.append(nbytes)
