"""KV-cache policies for next-scale (VAR) decoding: `FullKV` (the reference), `ScaleKV` and `HACK`.

A policy allocates the cache, names the query rows it wants to observe while a scale is decoded, and
after each scale (but the last) evicts entries with the core `KVCache.keep` per-head gather. Budgets
are fractions of the full context C = L - (tokens of the last scale): everything the last scale reads.
Every policy derives from `ScalePolicy`, itself a `genmotion.kv.PolicyBase` like the flow policies, and reports
the suite's one `PolicyStats` (context carried from scale to scale, peak and allocated bytes).

* ScaleKV (Li et al., 2025): per scale, layers are drafters (attention dispersed over earlier scales,
  found online from the observation queries or from a head profile) or refiners; drafters get
  `drafter_weight` times the average budget, refiners share the rest. Cached keys are scored by the
  attention of 16 observation queries on a 4x4 grid of the current scale, max-pooled over 5
  neighbours (SnapKV-style); each head keeps its top entries within the layer's budget.
* HACK (Qin et al., 2025): heads profiled offline (`profile.py`) as contextual (query-independent
  "vertical" attention) or structural (attention that follows the query's position, "diagonal").
  Structural heads get `structural_weight` times the budget of contextual ones, in their own head group
  (`HeadGroupCache`), so memory really differs. Contextual heads keep the keys with the highest column
  salience (attention summed over the observation queries); structural heads keep spatially aligned
  context: the newest scales whole, then an evenly spread grid of the next older one.

Axes: B batch, H heads, R observed rows, N entries, D head dim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F

from genmotion.cache import KVCache, LayeredKVCache
from genmotion.errors import UsageError
from genmotion.image_core.head_cache import HeadGroupCache
from genmotion.image_core.var_model import VAR
from genmotion.kv.naming import PolicyEntry, build_named, normalise, unknown_policy
from genmotion.kv.protocol import PolicyBase

__all__ = [
    "HACK",
    "FullKV",
    "HACKConfig",
    "head_groups",
    "ScaleKV",
    "ScaleKVConfig",
    "ScalePolicy",
    "POLICIES",
    "key_scores",
    "observation_rows",
    "parse_policy",
    "policy_parameters",
    "pool_scores",
    "spread_order",
    "top_entries",
]


class ScalePolicy(PolicyBase):
    """The next-scale loop's cache policy, on the base every cache policy shares (`genmotion.kv.PolicyBase`, the
    flow policies' too): it allocates the cache, names the query rows of the scale being decoded it wants to
    observe, and after each scale but the last evicts (`evict`); the stats record the bytes held and carried."""

    def __init__(self) -> None:
        super().__init__()
        self.num_scales = 0

    def allocate(self, var: VAR, batch: int, *, dtype: torch.dtype, device: torch.device) -> LayeredKVCache:
        """A fresh cache for `batch` rows (call `_begin` with it)."""
        raise NotImplementedError

    def observation_rows(self, scale_index: int) -> torch.Tensor | None:
        """Rows of scale `scale_index` whose queries the policy reads (None: none)."""
        return None

    def evict(self, cache: LayeredKVCache, scale_index: int, queries: Sequence[torch.Tensor]) -> None:
        """Drop entries after scale `scale_index` (not the last); `queries` per layer (B, H, R, D), scaled."""
        return None

    def after_scale(self, cache: LayeredKVCache, scale_index: int, queries: Sequence[torch.Tensor]) -> None:
        """Scale `scale_index` has been decoded (its entries are in `cache`): record, evict, record."""
        self._held(cache.valid_nbytes())
        if scale_index < self.num_scales - 1:
            self.evict(cache, scale_index, queries)
            self._carried(cache.valid_nbytes())

    def _begin(self, var: VAR, cache: LayeredKVCache) -> LayeredKVCache:
        self._allocated(cache.nbytes())
        self.num_scales = len(var.patch_nums)
        return cache


# ---- shared pieces ----------------------------------------------------------------------------------
def observation_rows(side: int, grid: int = 4) -> torch.Tensor:
    """Rows (flattened side x side positions) of a grid x grid set of observation queries, evenly spread."""
    if side <= grid:
        return torch.arange(side * side)
    at = ((torch.arange(grid) + 0.5) * side / grid).long()
    return (at[:, None] * side + at[None, :]).flatten()


def key_scores(queries_BHRD: torch.Tensor, keys_BHND: torch.Tensor) -> torch.Tensor:
    """Mean attention (B, H, N) the observed queries pay each key (queries carry the attention scale)."""
    return torch.softmax(queries_BHRD.float() @ keys_BHND.float().transpose(-1, -2), dim=-1).mean(2)


def pool_scores(scores_BHN: torch.Tensor, pool: int) -> torch.Tensor:
    """Max over `pool` neighbouring entries (odd width), so a kept key keeps its neighbourhood's evidence."""
    if pool <= 1:
        return scores_BHN
    B, H, N = scores_BHN.shape
    return F.max_pool1d(scores_BHN.reshape(B * H, 1, N), pool, stride=1, padding=pool // 2).view(B, H, N)


def top_entries(scores_BHN: torch.Tensor, budget: int) -> torch.Tensor:
    """Indices (B, H, min(budget, N)) of each head's top-scoring entries, in temporal order."""
    k = min(budget, scores_BHN.shape[-1])
    return scores_BHN.topk(k, dim=-1).indices.sort(dim=-1).values


def spread_order(side: int) -> torch.Tensor:
    """(side*side,) rank of each position of a side x side map such that any prefix of the ranking is
    spread evenly over the map (coarse strided grids first)."""
    rank = torch.full((side, side), -1, dtype=torch.long)
    count, stride = 0, 1 << max(0, (side - 1).bit_length())
    while stride >= 1:
        offset = stride // 2
        for y in range(offset % side, side, stride):
            for x in range(offset % side, side, stride):
                if rank[y, x] < 0:
                    rank[y, x], count = count, count + 1
        stride //= 2
    return rank.flatten()


def _context_capacity(var: VAR) -> int:
    return var.L - var.patch_nums[-1] ** 2


def _level_of(var: VAR, device: torch.device) -> torch.Tensor:
    return var.lvl_1L[0].to(device)


def _fraction(name: str, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise UsageError(f"{name} must be in (0, 1], got {value}", fix="e.g. 0.25 keeps a quarter of the context")


class FullKV(ScalePolicy):
    """Keep everything: the exact reference the other policies are measured against."""

    def allocate(self, var: VAR, batch: int, *, dtype: torch.dtype, device: torch.device) -> LayeredKVCache:
        return self._begin(var, var.new_cache(batch, dtype=dtype, device=device))


# ---- ScaleKV ------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ScaleKVConfig:
    budget: float = 0.25  # average kept context per layer, as a fraction of the full context
    drafter_fraction: float = 0.25  # share of layers that are drafters at each scale (at least one)
    drafter_weight: float = 2.0  # a drafter keeps this many times the average budget (at most everything)
    grid: int = 4  # observation queries: grid x grid of the current scale
    pool: int = 5  # max-pool width over neighbouring keys

    def __post_init__(self) -> None:
        _fraction("ScaleKV budget", self.budget)
        _fraction("ScaleKV drafter_fraction", self.drafter_fraction)
        if self.drafter_weight < 1 or self.grid < 1 or self.pool < 1 or self.pool % 2 == 0:
            raise UsageError("ScaleKV needs drafter_weight >= 1, grid >= 1 and an odd pool width")


class ScaleKV(ScalePolicy):
    """Scale-aware KV compression: drafter/refiner budgets per layer and scale, observation-query scores."""

    def __init__(self, config: ScaleKVConfig | None = None, profile: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = config or ScaleKVConfig()
        self.drafters_by_scale: list[list[int]] | None = profile.get("drafters") if profile else None
        self._var: VAR | None = None

    def budgets(self, var: VAR) -> tuple[int, int, int]:
        """(drafter budget, refiner budget, number of drafters) in entries per head."""
        depth, C = len(var.blocks), _context_capacity(var)
        total = self.config.budget * C * depth  # entries per head summed over layers: never exceeded
        drafters = min(depth, max(1, round(self.config.drafter_fraction * depth)))
        refiners = depth - drafters
        drafter = min(C, math.floor(self.config.drafter_weight * total / depth))
        if refiners:  # every refiner keeps at least one entry; drafters give way if they must
            drafter = max(1, min(drafter, math.floor((total - refiners) / drafters)))
            refiner = max(1, min(drafter, math.floor((total - drafters * drafter) / refiners)))
        else:
            refiner = drafter
        return max(1, drafter), refiner, drafters

    def allocate(self, var: VAR, batch: int, *, dtype: torch.dtype, device: torch.device) -> LayeredKVCache:
        self._var = var
        drafter, refiner, _ = self.budgets(var)
        capacity = max(drafter, refiner) + var.patch_nums[-1] ** 2
        head_dim = var.config.head_dim
        layers = [
            KVCache(batch, var.config.num_heads, capacity, head_dim, dtype=dtype, device=device) for _ in var.blocks
        ]
        return self._begin(var, LayeredKVCache(layers))

    def observation_rows(self, scale_index: int) -> torch.Tensor | None:
        assert self._var is not None, "allocate() first"
        return observation_rows(self._var.patch_nums[scale_index], self.config.grid)

    def _drafters(self, var: VAR, cache: LayeredKVCache, scale_index: int, scores: list[torch.Tensor]) -> set[int]:
        if self.drafters_by_scale is not None:
            return set(self.drafters_by_scale[scale_index])
        _, _, count = self.budgets(var)
        begin = var.config.scale_slices[scale_index][0]
        # attention mass on earlier scales: dispersed layers (drafters) spend more of it there
        dispersed = torch.stack(
            [(s * (layer.positions < begin)).sum(-1).mean() for s, layer in zip(scores, cache, strict=True)]
        )
        return set(dispersed.topk(count).indices.tolist())

    def evict(self, cache: LayeredKVCache, scale_index: int, queries: Sequence[torch.Tensor]) -> None:
        var = self._var
        assert var is not None
        raw = [key_scores(q, layer.keys) for q, layer in zip(queries, cache, strict=True)]
        drafters = self._drafters(var, cache, scale_index, raw)
        drafter, refiner, _ = self.budgets(var)
        for i, (scores, layer) in enumerate(zip(raw, cache, strict=True)):
            pooled = pool_scores(scores, self.config.pool)
            layer.keep(top_entries(pooled, drafter if i in drafters else refiner))


# ---- HACK --------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class HACKConfig:
    budget: float = 0.25  # average kept context per head, as a fraction of the full context
    structural_weight: float = 3.0  # a structural head keeps this many times what a contextual head keeps
    grid: int = 4  # observation queries for column salience

    def __post_init__(self) -> None:
        _fraction("HACK budget", self.budget)
        if self.structural_weight < 1 or self.grid < 1:
            raise UsageError("HACK needs structural_weight >= 1 and grid >= 1")


def head_groups(profile: dict[str, Any], depth: int, heads: int) -> list[tuple[list[int], list[int]]]:
    """(contextual heads, structural heads) of every layer from a head profile (see `profile.py`)."""
    types = profile.get("head_types")
    if not isinstance(types, list) or len(types) != depth or any(len(t) != heads for t in types):
        raise UsageError(
            f"the head profile does not describe {depth} layers x {heads} heads",
            fix="profile this model: profile_var_heads(...) / `genmotion profile-heads`",
        )
    return [
        ([h for h, t in enumerate(row) if t == "contextual"], [h for h, t in enumerate(row) if t == "structural"])
        for row in types
    ]


class HACK(ScalePolicy):
    """Head-aware compression: asymmetric budgets and pattern-specific retention per head type."""

    def __init__(self, profile: dict[str, Any], config: HACKConfig | None = None) -> None:
        super().__init__()
        self.config, self.profile = config or HACKConfig(), profile
        self._var: VAR | None = None
        self._groups: list[tuple[list[int], list[int]]] = []

    def budgets(self, var: VAR, contextual: int, structural: int) -> tuple[int, int]:
        """(contextual budget, structural budget) per head of a layer with these head counts."""
        C, H = _context_capacity(var), contextual + structural
        total = self.config.budget * C * H
        base = total / (contextual + self.config.structural_weight * structural)
        s_budget = min(C, math.floor(self.config.structural_weight * base))
        if not contextual:
            return 1, max(1, s_budget)
        if structural:  # every contextual head keeps at least one entry
            s_budget = max(1, min(s_budget, math.floor((total - contextual) / structural)))
        c_budget = min(C, s_budget if structural else C, math.floor((total - structural * s_budget) / contextual))
        return max(1, c_budget), max(1, s_budget)

    def allocate(self, var: VAR, batch: int, *, dtype: torch.dtype, device: torch.device) -> LayeredKVCache:
        self._var = var
        self._groups = head_groups(self.profile, len(var.blocks), var.config.num_heads)
        last = var.patch_nums[-1] ** 2
        layers = []
        for contextual, structural in self._groups:
            c_budget, s_budget = self.budgets(var, len(contextual), len(structural))
            layers.append(
                HeadGroupCache.allocate(
                    batch, [contextual, structural], [c_budget + last, s_budget + last], var.config.head_dim,
                    dtype=dtype, device=device,
                )
            )  # fmt: skip
        return self._begin(var, LayeredKVCache(layers))  # type: ignore[arg-type]

    def observation_rows(self, scale_index: int) -> torch.Tensor | None:
        assert self._var is not None, "allocate() first"
        return observation_rows(self._var.patch_nums[scale_index], self.config.grid)

    def _aligned_scores(self, var: VAR, positions: torch.Tensor) -> torch.Tensor:
        """Priority of each entry for structural heads: newer scale first, then spread over its map."""
        level = _level_of(var, positions.device)[positions]
        within = torch.cat([spread_order(p) for p in var.patch_nums]).to(positions.device)
        return (level * var.L + (var.L - within[positions])).float()

    def evict(self, cache: LayeredKVCache, scale_index: int, queries: Sequence[torch.Tensor]) -> None:
        var = self._var
        assert var is not None
        for layer, q, (contextual, structural) in zip(cache, queries, self._groups, strict=True):
            c_budget, s_budget = self.budgets(var, len(contextual), len(structural))
            assert isinstance(layer, HeadGroupCache)
            for heads, group in zip(layer.heads, layer.groups, strict=True):
                if heads.tolist() == structural:
                    group.keep(top_entries(self._aligned_scores(var, group.positions), s_budget))
                else:
                    salience = key_scores(q.index_select(1, heads.to(q.device)), group.keys)
                    group.keep(top_entries(salience, c_budget))


def _scalekv(profile: dict[str, Any] | None = None, **config: Any) -> ScaleKV:
    return ScaleKV(ScaleKVConfig(**config), profile)


def _hack(profile: dict[str, Any], **config: Any) -> HACK:
    return HACK(profile, HACKConfig(**config))


def _config_fields(config: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(config))


POLICIES: dict[str, PolicyEntry[ScalePolicy]] = {
    "full": PolicyEntry(FullKV),
    "scalekv": PolicyEntry(_scalekv, accepts=_config_fields(ScaleKVConfig) | {"profile"}),
    "hack": PolicyEntry(
        _hack,
        required={
            "profile": ("--kv hack needs a head profile", "pass --head-profile FILE from `genmotion profile-heads`")
        },
        accepts=_config_fields(HACKConfig) | {"profile"},
    ),
}


def policy_parameters(name: str) -> set[str]:
    """The keyword parameters `parse_policy(name, ...)` takes; an unknown name is a UsageError."""
    key = normalise(name)
    if key not in POLICIES:
        raise unknown_policy(key, POLICIES)
    return POLICIES[key].parameters()


def parse_policy(name: str, **params: Any) -> ScalePolicy:
    """A fresh policy by name, in the shape and name convention of every cache policy (`genmotion.kv.naming`):

    * `full`: `FullKV`, no parameters;
    * `scalekv`: `ScaleKV`; `profile` (a head profile with "drafters", optional) and `ScaleKVConfig`'s fields
      (`budget`, `drafter_fraction`, `drafter_weight`, `grid`, `pool`);
    * `hack`: `HACK`; `profile` (required) and `HACKConfig`'s fields (`budget`, `structural_weight`, `grid`).

    e.g. `parse_policy("scalekv", budget=0.5)`. An unknown name or parameter is a UsageError.
    """
    return build_named(POLICIES, name, params)
