"""Read a model's attention from outside: queries, keys, values of every `genmotion.nn.blocks.Attention` call.

The KV policies that score cached entries (FlowCache's importance term, Forcing-KV's head profile) need the
queries a forward computed, which the model never returns. `AttentionProbe` installs forward pre-hooks on
the attention modules for the duration of a `with` block (applied from outside, torchtitan-style; nothing
stays on the model), recomputes q, k and v of the new tokens with the module's own projection, and snapshots
the cache the call reads. `attention_probabilities` then rebuilds the exact softmax the call computed
(RoPE at the recorded positions, "key time <= query time" visibility). Axes: B batch, H heads, L new
tokens, S cached entries, D head dim, A position axes (only with multi-axis RoPE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from genmotion.errors import UsageError
from genmotion.kv.buffers import KVCache
from genmotion.nn.rope import Rotary

if TYPE_CHECKING:
    from genmotion.nn.blocks import Attention

__all__ = ["AttentionCall", "AttentionProbe", "attention_probabilities"]


@dataclass(frozen=True)
class AttentionCall:
    """One attention call: new queries/keys (before RoPE)/values, their positions, and the cache it read (if any).

    `history_k` (B, H, S, D) and `history_positions` (B, H, S[, A]) are the cache's valid entries before
    the call (S = 0 without a cache); `positions` are the new tokens' (L[, A]) or (B, L[, A]).
    """

    layer: int
    cache: KVCache | None
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    positions: torch.Tensor
    rotary: Rotary
    history_k: torch.Tensor
    history_positions: torch.Tensor

    def query_positions(self) -> torch.Tensor:
        """Positions of the new tokens shaped to broadcast against (B, H, L[, A])."""
        base = 1 if self.rotary.num_axes == 1 else 2
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
    q_pos, k_pos = call.query_positions(), call.key_positions()
    q = call.rotary(call.q, q_pos)
    k = call.rotary(call.keys(), k_pos)
    scores_BHLS = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    visible = _time(k_pos, call.rotary).unsqueeze(-2) <= _time(q_pos, call.rotary).unsqueeze(-1)
    return torch.softmax(scores_BHLS.masked_fill(~visible, float("-inf")), dim=-1)


class AttentionProbe:
    """`with AttentionProbe(model) as probe: model(...)` records one `AttentionCall` per attention layer call.

    Layers are numbered in module order; `probe.calls` lists the calls of the block in call order.
    Only models built from `genmotion.nn.blocks.Attention` can be probed.
    """

    def __init__(self, model: Any) -> None:
        from genmotion.nn.blocks import Attention  # genmotion.nn imports the cache package: import at use

        if not isinstance(model, nn.Module):
            raise UsageError(
                f"cannot probe the attention of a {type(model).__name__}",
                why="probing hooks torch modules",
                fix="pass an nn.Module built from genmotion.nn.blocks.Attention layers",
            )
        self.layers = [m for m in model.modules() if isinstance(m, Attention)]
        if not self.layers:
            raise UsageError(
                f"{type(model).__name__} has no genmotion.nn.blocks.Attention layers to probe",
                why="attention scoring and head profiling read queries from those layers",
                fix="build the model's attention from genmotion.nn.blocks.Attention",
            )
        self.calls: list[AttentionCall] = []
        self._handles: list[Any] = []

    def _hook(self, layer: int) -> Any:
        def record(module: Attention, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            x_BLC, positions, rotary = args[:3]
            cache: KVCache | None = kwargs.get("cache")
            B, L, C = x_BLC.shape
            qkv = module.qkv(x_BLC).view(B, L, 3, module.heads, module.head_dim).permute(2, 0, 3, 1, 4)
            if cache is None:
                tail = tuple(positions.shape[-1:]) if rotary.num_axes > 1 else ()
                hist_k, hist_pos = qkv[1][:, :, :0], positions.new_zeros((B, module.heads, 0, *tail))
            else:
                hist_k, hist_pos = cache.keys.clone(), cache.positions.clone()
            self.calls.append(AttentionCall(layer, cache, qkv[0], qkv[1], qkv[2], positions, rotary, hist_k, hist_pos))

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
