"""FlowCache's KV compression (`FlowCacheKV`): a fixed per-head budget of cached entries.

FlowCache (Ma et al., 2026) scores every cached entry of a head by
    score = lam * maxpool_pool(mean-query attention to the entry) - (1 - lam) * softmax(mean cosine similarity
            of the entry's key to the other keys)
(importance minus redundancy; FlowCache's code: lam = 0.07, pool 7, similarity with the diagonal removed and
divided by the entry count) and, once the cache holds more than `budget` entries, keeps the top-`budget`
per head in temporal order. Whose queries measure the attention is the `queries` setting:
* "clean" (default): the clean chunk being committed (read through `AttentionProbe`, RoPE applied as in the
  real attention) scores cache + itself, and the top-`budget` of both are kept;
* "denoising": as FlowCache's SkyReels-V2 code, the queries of the chunk being denoised score the clean
  entries (softmax over the clean entries only), and the chunk's own entries are always kept: the first
  evaluation of each chunk is probed, and at its commit the history is cut to `budget - chunk tokens` by
  those scores before the chunk is appended (a clean prefix, committed without being denoised, is scored as
  with "clean").
Similarity uses the stored keys before RoPE. Only clean context is ever scored: the chunk being denoised is
never written to the cache (its evaluations read the cache without committing), so it can never be evicted.
Bytes are flat: the buffers hold exactly `budget` entries per head, like a `RollingWindow` ring of the same
size. Axes: B batch, H heads, L chunk tokens, S entries, D head dim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genmotion.cache.policies import _CleanContextPolicy, _whole_frames
from genmotion.cache.probe import AttentionCall, AttentionProbe, attention_probabilities
from genmotion.errors import UsageError
from genmotion.kv.buffers import KVCache
from genmotion.kv.protocol import FlowModel, FrameLayout
from genmotion.sampling.flow import CLEAN_TIME

__all__ = ["QUERIES", "FlowCacheKV", "importance_redundancy_scores", "redundancy"]

QUERIES: tuple[str, ...] = ("clean", "denoising")


def redundancy(keys_BHSD: torch.Tensor) -> torch.Tensor:
    """(B, H, S) softmax over entries of each key's mean cosine similarity to the other keys of its head."""
    S = keys_BHSD.shape[2]
    k = keys_BHSD / (keys_BHSD.norm(dim=-1, keepdim=True) + 1e-8)
    if S == 1:
        return torch.ones(keys_BHSD.shape[:3], dtype=keys_BHSD.dtype, device=keys_BHSD.device)
    mean_sim = ((k * k.sum(dim=2, keepdim=True)).sum(dim=-1) - 1.0) / S  # drop cos(k_i, k_i) = 1
    return mean_sim.softmax(dim=-1)


def importance_redundancy_scores(
    attention_BHS: torch.Tensor, keys_BHSD: torch.Tensor, *, lam: float, pool: int
) -> torch.Tensor:
    """(B, H, S) FlowCache score from the mean-query attention to each entry and the entries' keys."""
    B, H, S = attention_BHS.shape
    pooled = F.max_pool1d(attention_BHS.reshape(B * H, 1, S), kernel_size=pool, stride=1, padding=pool // 2)
    importance = pooled[..., :S].reshape(B, H, S)
    return lam * importance - (1.0 - lam) * redundancy(keys_BHSD)


class FlowCacheKV(_CleanContextPolicy):
    """Clean-context KV cache (as `SharedClean`) that keeps the top-`budget` entries per head once it is full.

    `budget` counts entries (tokens) per head and layer, and is exactly what the buffers hold. With
    queries="clean", a commit runs the clean forward against the cache read-only, takes the chunk's new
    keys/values from the probe (the module's own projection of the same input, so bit-identical), and writes
    back either everything (while it fits) or the top-`budget` of cache + chunk. With queries="denoising", the
    history is cut by the scores of the chunk's first denoising evaluation, then the chunk is committed as in
    `SharedClean`. `kept` records, per compression, the (B, H, K) indices kept in each layer (into cache +
    chunk for "clean", into the history for "denoising").
    """

    def __init__(self, budget: int, *, lam: float = 0.07, pool: int = 7, queries: str = "clean") -> None:
        super().__init__(sink=0, window=None)
        if budget < 1 or pool < 1 or not 0.0 <= lam <= 1.0:
            raise UsageError(
                f"FlowCacheKV needs budget >= 1, pool >= 1 and 0 <= lam <= 1, got {budget}, {pool}, {lam}",
                fix="FlowCache uses lam=0.07, pool=7; budget is in cached tokens per head",
            )
        if queries not in QUERIES:
            raise UsageError(
                f"unknown FlowCacheKV queries {queries!r}",
                why="the importance term is measured with the committed chunk's queries or the denoised chunk's",
                fix=f"use one of {', '.join(QUERIES)}",
            )
        self.budget, self.lam, self.pool, self.queries = int(budget), float(lam), int(pool), queries
        self.kept: list[list[torch.Tensor]] = []
        self._attention: list[torch.Tensor] | None = None  # per layer (B, H, S): denoising queries on the history

    def start(self, model: FlowModel, layout: FrameLayout, *, batch: int, max_frames: int, like: torch.Tensor) -> None:
        chunk = layout.chunk_tokens
        if self.queries == "denoising" and chunk >= self.budget:
            raise UsageError(
                f"flowcache-kv with queries=denoising keeps each new chunk whole: its {chunk} tokens need a budget "
                f"above them, got {self.budget}",
                fix=f"raise budget above {chunk} tokens, or use queries=clean",
            )
        self.layout, self._frames, self.kept, self._attention = layout, 0, [], None
        self.cache = model.new_cache(batch, self.budget)

    def velocity(self, model: FlowModel, x_BLC: torch.Tensor, t: float, *, start_frame: int) -> torch.Tensor:
        cache = self._state()
        if self.queries == "clean" or self._attention is not None or cache.length + x_BLC.shape[1] <= self.budget:
            return super().velocity(model, x_BLC, t, start_frame=start_frame)
        with AttentionProbe(model) as probe:  # the first evaluation of a chunk whose commit must compress
            out = super().velocity(model, x_BLC, t, start_frame=start_frame)
        self._attention = [_history_attention(probe.for_cache(layer)) for layer in cache]
        return out

    def commit(self, model: FlowModel, clean_BLC: torch.Tensor, *, start_frame: int) -> None:
        if self._attention is not None:  # queries="denoising" and the chunk's first evaluation was probed
            return self._commit_after_cut(model, clean_BLC, start_frame=start_frame)
        layout, cache = self._layout(), self._state()
        frames = _whole_frames(layout, clean_BLC)
        self._check_commit(start_frame)
        frame_ids = layout.frame_ids(start_frame, clean_BLC.shape[1], device=clean_BLC.device)
        t_BL = clean_BLC.new_full(clean_BLC.shape[:2], CLEAN_TIME)
        with AttentionProbe(model) as probe:
            self._call(model, clean_BLC, t_BL, frame_ids, cache=cache.read_only(), mask="causal")
        self._frames += frames
        kept = [self._write(layer, probe.for_cache(layer)) for layer in cache]
        if kept[0] is not None:
            self.kept.append([k for k in kept if k is not None])

    def _commit_after_cut(self, model: FlowModel, clean_BLC: torch.Tensor, *, start_frame: int) -> None:
        """Keep the top `budget - L` history entries by the denoising queries' scores, then commit the chunk."""
        cache, keep, attention = self._state(), self.budget - clean_BLC.shape[1], self._attention
        assert attention is not None and cache.length > keep
        self._check_commit(start_frame)  # before the cut: a refused commit leaves the cache as it was
        kept = []
        for layer, attn_BHS in zip(cache, attention, strict=True):
            scores = importance_redundancy_scores(attn_BHS, layer.keys, lam=self.lam, pool=self.pool)
            index = scores.topk(keep, dim=-1).indices.sort(dim=-1).values  # (B, H, keep)
            layer.keep(index)
            kept.append(index)
        self.kept.append(kept)
        self._attention = None
        super().commit(model, clean_BLC, start_frame=start_frame)

    def scores(self, call: AttentionCall, keys_BHSD: torch.Tensor) -> torch.Tensor:
        """(B, H, S) FlowCache scores of cache + chunk entries, from the clean chunk's queries."""
        attention = attention_probabilities(call).mean(dim=2)  # (B, H, S): mean over the chunk's queries
        return importance_redundancy_scores(attention, keys_BHSD, lam=self.lam, pool=self.pool)

    def _write(self, layer: KVCache, call: AttentionCall) -> torch.Tensor | None:
        """Append the chunk's entries while they fit; else keep the top-`budget` of cache + chunk (returned)."""
        S = layer.length
        if S + call.k.shape[2] <= self.budget:
            shared = call.positions.dim() == (1 if call.position_axes == 1 else 2)  # (L[, A]): one row for all
            layer.append(call.k, call.v, call.positions if shared else call.key_positions()[:, :, S:])
            return None
        keys, values = torch.cat([layer.keys, call.k], dim=2), torch.cat([layer.values, call.v], dim=2)
        positions = call.key_positions()
        index = self.scores(call, keys).topk(self.budget, dim=-1).indices.sort(dim=-1).values  # (B, H, budget)
        gather = index.unsqueeze(-1).expand(*index.shape, keys.shape[-1])
        pos_index = index if positions.dim() == 3 else index.unsqueeze(-1).expand(*index.shape, positions.shape[-1])
        layer.reset()
        layer.append(keys.gather(2, gather), values.gather(2, gather), positions.gather(2, pos_index))
        return index


def _history_attention(call: AttentionCall) -> torch.Tensor:
    """(B, H, S) mean over the call's queries of their softmax over the S history entries only (FlowCache's
    "clean tokens" softmax): the full softmax restricted to the history and renormalised."""
    S = call.history_k.shape[2]
    probs = attention_probabilities(call)[..., :S]
    return (probs / probs.sum(dim=-1, keepdim=True).clamp_min(1e-30)).mean(dim=2)
