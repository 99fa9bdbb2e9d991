"""FlowCache's KV compression (`ImportanceRedundancy`): a fixed per-head budget of cached entries.

FlowCache (Ma et al., 2026) scores every cached entry of a head by
    score = lam * maxpool_pool(mean-query attention to the entry) - (1 - lam) * softmax(mean cosine similarity
            of the entry's key to the other keys)
(importance minus redundancy; FlowCache's code: lam = 0.07, pool 7, similarity with the diagonal removed and
divided by the entry count) and, once the cache holds more than `budget` entries, keeps the top-`budget`
per head in temporal order. Here the queries are those of the clean chunk being committed (read through
`AttentionProbe`, RoPE applied as in the real attention); similarity uses the stored keys before RoPE.
Only clean context is ever scored: the chunk being denoised is never written to the cache (its evaluations
read the cache without committing), so it can never be evicted. Bytes are flat: the buffers hold exactly
`budget` entries per head, like a `RollingWindow` ring of the same size. Axes: B batch, H heads, S entries, D head dim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genmotion.cache.kv import KVCache
from genmotion.cache.policies import _CleanContextPolicy, _whole_frames
from genmotion.cache.policy import FlowModel, FrameLayout
from genmotion.cache.probe import AttentionCall, AttentionProbe, attention_probabilities
from genmotion.errors import UsageError
from genmotion.sampling.flow import CLEAN_TIME

__all__ = ["ImportanceRedundancy", "importance_redundancy_scores", "redundancy"]


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


class ImportanceRedundancy(_CleanContextPolicy):
    """Clean-context KV cache (as `SharedClean`) that keeps the top-`budget` entries per head once it is full.

    `budget` counts entries (tokens) per head and layer, and is exactly what the buffers hold. A commit
    runs the clean forward against the cache read-only, takes the chunk's new keys/values from the probe
    (the module's own projection of the same input, so bit-identical), and writes back either everything
    (while it fits) or the top-`budget` of cache + chunk. `kept` records, per compression, the
    (B, H, budget) indices into cache + chunk kept in each layer.
    """

    def __init__(self, budget: int, *, lam: float = 0.07, pool: int = 7) -> None:
        super().__init__(sink=0, window=None)
        if budget < 1 or pool < 1 or not 0.0 <= lam <= 1.0:
            raise UsageError(
                f"ImportanceRedundancy needs budget >= 1, pool >= 1 and 0 <= lam <= 1, got {budget}, {pool}, {lam}",
                fix="FlowCache uses lam=0.07, pool=7; budget is in cached tokens per head",
            )
        self.budget, self.lam, self.pool = int(budget), float(lam), int(pool)
        self.kept: list[list[torch.Tensor]] = []

    def start(self, model: FlowModel, layout: FrameLayout, *, batch: int, max_frames: int, like: torch.Tensor) -> None:
        self.layout, self._frames, self.kept = layout, 0, []
        self.cache = model.new_cache(batch, self.budget)

    def commit(self, model: FlowModel, clean_BLC: torch.Tensor, *, start_frame: int) -> None:
        layout, cache = self._layout(), self._state()
        frames = _whole_frames(layout, clean_BLC)
        if start_frame != self._frames:
            raise UsageError(f"commit at frame {start_frame} does not follow the {self._frames} committed frames")
        frame_ids = layout.frame_ids(start_frame, clean_BLC.shape[1], device=clean_BLC.device)
        t_BL = clean_BLC.new_full(clean_BLC.shape[:2], CLEAN_TIME)
        with AttentionProbe(model) as probe:
            self._call(model, clean_BLC, t_BL, frame_ids, cache=cache.read_only(), mask="causal")
        self._frames += frames
        kept = [self._write(layer, probe.for_cache(layer)) for layer in cache]
        if kept[0] is not None:
            self.kept.append([k for k in kept if k is not None])

    def scores(self, call: AttentionCall, keys_BHSD: torch.Tensor) -> torch.Tensor:
        """(B, H, S) FlowCache scores of cache + chunk entries, from the clean chunk's queries."""
        attention = attention_probabilities(call).mean(dim=2)  # (B, H, S): mean over the chunk's queries
        return importance_redundancy_scores(attention, keys_BHSD, lam=self.lam, pool=self.pool)

    def _write(self, layer: KVCache, call: AttentionCall) -> torch.Tensor | None:
        """Append the chunk's entries while they fit; else keep the top-`budget` of cache + chunk (returned)."""
        S = layer.length
        if S + call.k.shape[2] <= self.budget:
            shared = call.positions.dim() == (1 if call.rotary.num_axes == 1 else 2)  # (L[, A]): one row for all
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
