"""Cache data that next-scale KV policies pass to the VAR transformer: head-grouped caches.

(The queries the policies read come from `genmotion.cache.AttentionProbe`, the probe of every cache policy.)

* `HeadGroupCache`: one layer's cache split into groups of heads, each a core `KVCache` with its own
  capacity, so heads of one layer can hold different numbers of entries (HACK's asymmetric budgets) and
  memory is really saved. Attention runs per group, so it is exact over what each group holds.

Axes: B batch, H heads, T new entries, N cached + new entries, D head dim.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from genmotion.cache import KVCache
from genmotion.errors import UsageError
from genmotion.kv.layered import KVCacheParts

__all__ = ["HeadGroupCache", "attend_cached"]


class HeadGroupCache(KVCacheParts):
    """One layer's KV cache as disjoint head groups, each a `KVCache` over its own heads and capacity."""

    def __init__(self, heads: Sequence[Sequence[int]], caches: Sequence[KVCache]) -> None:
        flat = sorted(h for group in heads for h in group)
        if flat != list(range(len(flat))) or len(heads) != len(caches):
            raise UsageError(f"head groups {heads} must split heads 0..H-1 and match {len(caches)} caches")
        for group, cache in zip(heads, caches, strict=True):
            if cache.heads != len(group):
                raise UsageError(f"a cache of {cache.heads} heads cannot hold the head group {list(group)}")
        self.heads = [torch.tensor(list(g), dtype=torch.long) for g in heads]
        self.groups = list(caches)

    @classmethod
    def allocate(
        cls, batch: int, heads: Sequence[Sequence[int]], capacities: Sequence[int], head_dim: int, **kwargs: object
    ) -> HeadGroupCache:
        """Fresh groups; `kwargs` go to every `KVCache` (dtype, device)."""
        caches = [
            KVCache(batch, len(g), c, head_dim, **kwargs)  # type: ignore[arg-type]
            for g, c in zip(heads, capacities, strict=True)
            if len(g)
        ]
        return cls([g for g in heads if len(g)], caches)

    @property
    def batch(self) -> int:
        return self.groups[0].batch

    @property
    def length(self) -> int:
        """Entries held by the fullest head group (0 for a fresh cache)."""
        return max(g.length for g in self.groups)

    @property
    def num_heads(self) -> int:
        return sum(len(h) for h in self.heads)

    def parts(self) -> Sequence[KVCache]:
        return self.groups


def attend_cached(
    cache: KVCache | HeadGroupCache,
    q_BHTD: torch.Tensor,
    k_BHTD: torch.Tensor,
    v_BHTD: torch.Tensor,
    positions_T: torch.Tensor | None,
    *,
    scale: float,
    commit: bool = True,
) -> torch.Tensor:
    """New queries over cached + new keys (one scale is one block of the block-causal mask): (B, H, T, D). A
    `HeadGroupCache` attends group by group, each group's heads over that group's entries."""
    if isinstance(cache, HeadGroupCache):
        out = torch.empty_like(q_BHTD)
        for heads, group in zip(cache.heads, cache.groups, strict=True):
            h = heads.to(q_BHTD.device)
            q, k, v = (x.index_select(1, h) for x in (q_BHTD, k_BHTD, v_BHTD))
            out.index_copy_(1, h, attend_cached(group, q, k, v, positions_T, scale=scale, commit=commit))
        return out
    k, v, _ = cache.extend(k_BHTD, v_BHTD, positions_T, commit=commit)  # B, H, N, D
    return F.scaled_dot_product_attention(q_BHTD, k.to(q_BHTD.dtype), v.to(q_BHTD.dtype), scale=scale)
