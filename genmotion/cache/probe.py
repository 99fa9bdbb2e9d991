"""Read a model's attention from outside: queries, keys, values of every attention call, for every cache policy.

The KV policies that score cached entries need the queries a forward computed, which the model never returns:
the flow policies (FlowCache's importance term, Forcing-KV's head profile) and the next-scale ones (ScaleKV's
observation queries, HACK's column salience, the VAR head profile). `AttentionProbe` installs forward
pre-hooks on the attention modules for the duration of a `with` block (applied from outside, torchtitan-style;
nothing stays on the model), recomputes q, k and v of the new tokens (or of the chosen `rows` of them only,
equal to float rounding: the projection is per token) with the module's own projection, and snapshots the
cache the call reads. It reads `genmotion.nn.blocks.Attention` itself, and any module with a `probe_call`
method (`ProbedAttention`, e.g. VAR's official-layout attention). `attention_probabilities` then rebuilds the
exact softmax a RoPE'd call computed (RoPE at the recorded positions, "key time <= query time" visibility).
Axes: B batch, H heads, L new tokens (or R probed rows), S cached entries, D head dim, A position axes (only
with multi-axis RoPE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import nn

from genmotion.errors import UsageError
from genmotion.kv.buffers import KVCache
from genmotion.nn.rope import Rotary

if TYPE_CHECKING:
    from genmotion.nn.blocks import Attention

__all__ = ["AttentionCall", "AttentionProbe", "ProbedAttention", "attention_probabilities", "history"]


@dataclass(frozen=True)
class AttentionCall:
    """One attention call: new queries/keys (before RoPE)/values, their positions, and the cache it read (if any).

    `history_k` (B, H, S, D) and `history_positions` (B, H, S[, A]) are the cache's valid entries before
    the call (S = 0 without a cache, or when the probe takes no snapshot); `positions` are the new tokens'
    (L[, A]) or (B, L[, A]). `rotary` is None for attention
    without RoPE; `scale` is the softmax scale of q @ k^T.
    """

    layer: int
    cache: KVCache | None
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    positions: torch.Tensor
    rotary: Rotary | None
    history_k: torch.Tensor
    history_positions: torch.Tensor
    scale: float

    def scaled_queries(self) -> torch.Tensor:
        """(B, H, L, D) queries times the softmax scale: softmax(q @ k^T) is then the attention (no RoPE)."""
        return self.q * self.scale

    @property
    def position_axes(self) -> int:
        """Axes of the RoPE positions (1: time only; the first axis is time)."""
        return self._rotary().num_axes

    def _rotary(self) -> Rotary:
        if self.rotary is None:
            raise UsageError("this attention call has no RoPE positions", fix="use scaled_queries() for it")
        return self.rotary

    def query_positions(self) -> torch.Tensor:
        """Positions of the new tokens shaped to broadcast against (B, H, L[, A])."""
        base = 1 if self._rotary().num_axes == 1 else 2
        pos = self.positions
        return pos.reshape((1, 1) + tuple(pos.shape)) if pos.dim() == base else pos.unsqueeze(1)

    def key_positions(self) -> torch.Tensor:
        """(B, H, S + L[, A]) positions of every key the call attended: the history, then the new tokens."""
        B, H = self.q.shape[:2]
        q_pos = self.query_positions()
        new = q_pos.expand(B, H, *q_pos.shape[2:])
        return torch.cat([self.history_positions.to(new.dtype), new], dim=2)

    def keys(self) -> torch.Tensor:
        """(B, H, S + L, D) keys before RoPE: the history, then the new tokens."""
        return torch.cat([self.history_k, self.k], dim=2)


def _time(positions: torch.Tensor, rotary: Rotary) -> torch.Tensor:
    return positions if rotary.num_axes == 1 else positions[..., 0]


def attention_probabilities(call: AttentionCall) -> torch.Tensor:
    """(B, H, L, S + L) softmax weights of the call's new queries over the history and the new keys.

    The rule of the model's mask="causal" (the only mask the scoring policies use): a key is visible when its
    time position is <= the query's.
    """
    rotary, q_pos, k_pos = call._rotary(), call.query_positions(), call.key_positions()
    q = rotary(call.q, q_pos)
    k = rotary(call.keys(), k_pos)
    scores_BHLS = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    visible = _time(k_pos, rotary).unsqueeze(-2) <= _time(q_pos, rotary).unsqueeze(-1)
    return torch.softmax(scores_BHLS.masked_fill(~visible, float("-inf")), dim=-1)


def history(cache: Any, k_BHLD: torch.Tensor, positions_tail: tuple[int, ...], snapshot: bool) -> tuple[Any, ...]:
    """(history keys (B, H, S, D), history positions (B, H, S[, A])) of the cache a call reads: copies of its
    valid entries with `snapshot` and a `KVCache`, else empty (S = 0)."""
    if snapshot and isinstance(cache, KVCache):
        return cache.keys.clone(), cache.positions.clone()
    if snapshot and cache is not None:
        raise UsageError(f"cannot snapshot a {type(cache).__name__}", fix="probe with snapshot=False")
    B, H = k_BHLD.shape[:2]
    return k_BHLD[:, :, :0], torch.zeros((B, H, 0, *positions_tail), dtype=torch.long, device=k_BHLD.device)


def _select(rows: torch.Tensor | None, x_BLC: torch.Tensor) -> torch.Tensor:
    return x_BLC if rows is None else x_BLC.index_select(1, rows.to(x_BLC.device))


@runtime_checkable
class ProbedAttention(Protocol):
    """An attention module that tells the probe what one of its calls computes (the `forward` arguments given)."""

    def probe_call(
        self, layer: int, args: tuple[Any, ...], kwargs: dict[str, Any], *, rows: torch.Tensor | None, snapshot: bool
    ) -> AttentionCall: ...


def _core_call(
    module: Attention,
    layer: int,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    rows: torch.Tensor | None,
    snapshot: bool,
) -> AttentionCall:
    """What a `genmotion.nn.blocks.Attention` call (x, positions, rotary, cache=...) computes."""
    x_BLC, positions, rotary = args[:3]
    cache: KVCache | None = kwargs.get("cache")
    x_BLC = _select(rows, x_BLC)
    B, L, C = x_BLC.shape
    qkv = module.qkv(x_BLC).view(B, L, 3, module.heads, module.head_dim).permute(2, 0, 3, 1, 4)
    if rows is not None:
        positions = positions.index_select(-1 if rotary.num_axes == 1 else -2, rows.to(positions.device))
    tail = tuple(positions.shape[-1:]) if rotary.num_axes > 1 else ()
    hist_k, hist_pos = history(cache, qkv[1], tail, snapshot)
    return AttentionCall(
        layer, cache, qkv[0], qkv[1], qkv[2], positions, rotary, hist_k, hist_pos, module.head_dim**-0.5
    )


class AttentionProbe:
    """`with AttentionProbe(model) as probe: model(...)` records one `AttentionCall` per attention layer call.

    Layers are numbered in module order; `probe.calls` lists the calls of the block in call order. `rows`
    (R,) records only those rows of the new tokens; `snapshot=False` skips copying the cache before each call
    (history then empty: read the cache itself after the call). Models built from `genmotion.nn.blocks.Attention`
    or from `ProbedAttention` modules can be probed.
    """

    def __init__(self, model: Any, *, rows: torch.Tensor | None = None, snapshot: bool = True) -> None:
        from genmotion.nn.blocks import Attention  # genmotion.nn imports the cache package: import at use

        if not isinstance(model, nn.Module):
            raise UsageError(
                f"cannot probe the attention of a {type(model).__name__}",
                why="probing hooks torch modules",
                fix="pass an nn.Module built from genmotion.nn.blocks.Attention layers",
            )
        self.layers = [m for m in model.modules() if isinstance(m, Attention | ProbedAttention)]
        self.rows, self.snapshot = rows, snapshot
        if not self.layers:
            raise UsageError(
                f"{type(model).__name__} has no attention layers to probe (genmotion.nn.blocks.Attention or "
                "ProbedAttention)",
                why="attention scoring and head profiling read queries from those layers",
                fix="build the model's attention from genmotion.nn.blocks.Attention",
            )
        self.calls: list[AttentionCall] = []
        self._handles: list[Any] = []

    def _hook(self, layer: int) -> Any:
        def record(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            rows, snapshot = self.rows, self.snapshot
            if isinstance(module, ProbedAttention):
                call = module.probe_call(layer, args, kwargs, rows=rows, snapshot=snapshot)
            else:
                call = _core_call(module, layer, args, kwargs, rows=rows, snapshot=snapshot)
            self.calls.append(call)

        return record

    def for_cache(self, cache: KVCache) -> AttentionCall:
        """The last recorded call that read `cache` (one layer's cache of a LayeredKVCache)."""
        for call in reversed(self.calls):
            if call.cache is cache:
                return call
        raise UsageError("no attention call read this cache", fix="run the forward inside the probe's with block")

    def __enter__(self) -> AttentionProbe:
        self.calls = []
        self._handles = [
            m.register_forward_pre_hook(self._hook(i), with_kwargs=True) for i, m in enumerate(self.layers)
        ]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
