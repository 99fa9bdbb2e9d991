"""Cache policies by name, and their composition: `parse_policy("flowcache+forcing-kv", profile="heads.json")`.

A name is one KV policy (how context keys/values are held) optionally joined by `+` with the step-skipping
policy `flowcache`, which then runs on top of it:

| name | policy |
|---|---|
| `recompute` | `Recompute(sink=0, window=None)`: no cache |
| `shared` | `SharedClean(context_frames=None)` (Ca2-VDM) |
| `rolling` | `RollingWindow(sink=1, window=4)` |
| `flowcache-kv` | `FlowCacheKV(budget, lam=0.07, pool=7, queries="clean")`: `budget` is required |
| `forcing-kv` | `ForcingKV(profile, sink=1, recent=1, ...)`: `profile` (a HeadProfile or JSON path) is required |
| `flowcache` | `FlowCache(thresh=0.01, warmup=5, order=0, rule="input")` over `shared` or the joined KV policy |

Keyword parameters go to whichever part accepts them (e.g. `thresh` to `flowcache`, `budget` to
`flowcache-kv`); a parameter no part accepts, an unknown name, or two KV policies are usage errors.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from genmotion.cache.flowcache import FlowCache
from genmotion.cache.flowcache_kv import FlowCacheKV
from genmotion.cache.forcing_kv import ForcingKV
from genmotion.cache.policies import Recompute, RollingWindow, SharedClean
from genmotion.cache.profile import HeadProfile
from genmotion.errors import UsageError
from genmotion.kv.protocol import CachePolicy

__all__ = [
    "KV_POLICIES",
    "STEP_POLICIES",
    "kv_part",
    "parse_policy",
    "policy_names",
    "policy_parameters",
    "policy_parts",
    "uses_steps",
]


def _recompute(sink: int = 0, window: int | None = None) -> CachePolicy:
    return Recompute(sink=sink, window=window)


def _shared(context_frames: int | None = None) -> CachePolicy:
    return SharedClean(context_frames=context_frames)


def _rolling(sink: int = 1, window: int = 4) -> CachePolicy:
    return RollingWindow(sink=sink, window=window)


def _flowcache_kv(budget: int | None = None, lam: float = 0.07, pool: int = 7, queries: str = "clean") -> CachePolicy:
    if budget is None:
        raise UsageError(
            "flowcache-kv needs a budget (cached tokens kept per head)",
            fix="pass budget=..., e.g. the tokens of the frames a rolling window of the same bytes would hold",
        )
    return FlowCacheKV(budget, lam=lam, pool=pool, queries=queries)


def _forcing_kv(
    profile: HeadProfile | str | Path | None = None,
    sink: int = 1,
    recent: int = 1,
    window: int | None = None,
    segments: int = 6,
    keep_ratio: float = 1 / 3,
    selection_layer: int = 1,
) -> CachePolicy:
    if profile is None:
        raise UsageError(
            "forcing-kv needs a head profile",
            fix="write one with `genmotion profile-heads --model M -o heads.json`, then pass profile=heads.json",
        )
    return ForcingKV(
        profile,
        sink=sink,
        recent=recent,
        window=window,
        segments=segments,
        keep_ratio=keep_ratio,
        selection_layer=selection_layer,
    )


KV_POLICIES: dict[str, Callable[..., CachePolicy]] = {
    "recompute": _recompute,
    "shared": _shared,
    "rolling": _rolling,
    "flowcache-kv": _flowcache_kv,
    "forcing-kv": _forcing_kv,
}
STEP_POLICIES: tuple[str, ...] = ("flowcache",)


def policy_names() -> tuple[str, ...]:
    """Every single name `parse_policy` accepts (join a KV policy and `flowcache` with `+`)."""
    return (*KV_POLICIES, *STEP_POLICIES)


def _accepted(factory: Callable[..., Any]) -> set[str]:
    return set(inspect.signature(factory).parameters)


_FLOWCACHE_PARAMS = {"thresh", "warmup", "order", "rule", "embed"}


def policy_parts(name: str) -> list[str]:
    """The parts of a policy name, normalised: "FlowCache + forcing-kv" -> ["flowcache", "forcing-kv"]."""
    return [p.strip().lower() for p in name.split("+")]


def kv_part(name: str) -> str:
    """The KV policy a name runs on: its KV part, or "shared" when it names only `flowcache`."""
    kv = [p for p in policy_parts(name) if p in KV_POLICIES]
    return kv[0] if kv else "shared"


def uses_steps(name: str) -> bool:
    """Whether a name joins the step-skipping policy (`flowcache`) to its KV policy."""
    return any(p in STEP_POLICIES for p in policy_parts(name))


def policy_parameters(name: str) -> set[str]:
    """The keyword parameters `parse_policy(name, ...)` accepts (name already valid)."""
    accepted = _accepted(KV_POLICIES[kv_part(name)])
    return accepted | (_FLOWCACHE_PARAMS if uses_steps(name) else set())


def parse_policy(name: str, **params: Any) -> CachePolicy:
    """A fresh policy for `name` (see the module doc); e.g. `parse_policy("flowcache+rolling", window=8)`."""
    parts = policy_parts(name)
    valid = " | ".join(policy_names())
    unknown = [p for p in parts if p not in policy_names()]
    if unknown or not parts:
        raise UsageError(
            f"unknown cache policy {unknown[0] if unknown else name!r}",
            fix=f"use one of {valid}, or a KV policy joined with flowcache by '+' (e.g. flowcache+forcing-kv)",
        )
    kv = [p for p in parts if p in KV_POLICIES]
    steps = [p for p in parts if p in STEP_POLICIES]
    if len(kv) > 1 or len(steps) > 1:
        raise UsageError(
            f"cache policy {name!r} combines {' and '.join(kv if len(kv) > 1 else steps)}",
            why="one KV policy owns the cache, and flowcache can be applied once",
            fix="join at most one of recompute | shared | rolling | flowcache-kv | forcing-kv with flowcache",
        )
    factory = KV_POLICIES[kv_part(name)]
    kv_params = {k: v for k, v in params.items() if k in _accepted(factory)}
    step_params = {k: v for k, v in params.items() if k in _FLOWCACHE_PARAMS}
    extra = sorted(set(params) - set(kv_params) - (set(step_params) if steps else set()))
    if extra:
        accepted = sorted(policy_parameters(name))
        raise UsageError(f"cache policy {name!r} takes no parameter {extra[0]!r}", fix=f"use one of {accepted}")
    policy = factory(**kv_params)
    return FlowCache(**step_params, context=policy) if steps else policy
