"""Cache policies by name, and their composition: `parse_policy("flowcache+forcing-kv", profile="heads.json")`.

A name is one KV policy (how context keys/values are held) optionally joined by `+` with the step-skipping
policy `flowcache`, which then runs on top of it:

| name | policy |
|---|---|
| `recompute` | `Recompute` (no cache) |
| `shared` | `SharedClean` (Ca2-VDM) |
| `rolling` | `RollingWindow`, with sink=1, window=4 unless given |
| `flowcache-kv` | `FlowCacheKV`: `budget` is required |
| `forcing-kv` | `ForcingKV`: `profile` (a HeadProfile or JSON path) is required |
| `flowcache` | `FlowCache` over `shared` or the joined KV policy |

Each is built from its class: the parameters a name accepts and their defaults are the class's own (read from
its signature), so they are written once. Keyword parameters go to whichever part accepts them (e.g. `thresh`
to `flowcache`, `budget` to `flowcache-kv`); a parameter no part accepts, an unknown name, a missing required
parameter, or two KV policies are usage errors. The constructor shape, the name convention (lower-case, words
joined by `-`, blanks and case ignored) and those errors are the ones every generator's policies share
(`genmotion.kv.naming`).
"""

from __future__ import annotations

import inspect
from typing import Any

from genmotion.cache.flowcache import FlowCache
from genmotion.cache.flowcache_kv import FlowCacheKV
from genmotion.cache.forcing_kv import ForcingKV
from genmotion.cache.policies import Recompute, RollingWindow, SharedClean
from genmotion.errors import UsageError
from genmotion.kv.naming import PolicyEntry, check_parameters, normalise, unknown_policy
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


KV_POLICIES: dict[str, PolicyEntry[CachePolicy]] = {
    "recompute": PolicyEntry(Recompute),
    "shared": PolicyEntry(SharedClean),
    "rolling": PolicyEntry(RollingWindow, {"sink": 1, "window": 4}),
    "flowcache-kv": PolicyEntry(
        FlowCacheKV,
        required={
            "budget": (
                "flowcache-kv needs budget",
                "pass budget=... (cached tokens kept per head), e.g. the tokens of the frames a rolling "
                "window of the same bytes would hold",
            )
        },
    ),
    "forcing-kv": PolicyEntry(
        ForcingKV,
        required={
            "profile": (
                "forcing-kv needs profile",
                "write a head profile with `genmotion profile-heads --model M -o heads.json`, then pass "
                "profile=heads.json",
            )
        },
    ),
}
STEP_POLICIES: tuple[str, ...] = ("flowcache",)
_FLOWCACHE_PARAMS = set(inspect.signature(FlowCache).parameters) - {"context"}


def policy_names() -> tuple[str, ...]:
    """Every single name `parse_policy` accepts (join a KV policy and `flowcache` with `+`)."""
    return (*KV_POLICIES, *STEP_POLICIES)


def policy_parts(name: str) -> list[str]:
    """The parts of a policy name, normalised: "FlowCache + forcing-kv" -> ["flowcache", "forcing-kv"]."""
    return [normalise(p) for p in name.split("+")]


def kv_part(name: str) -> str:
    """The KV policy a name runs on: its KV part, or "shared" when it names only `flowcache`."""
    kv = [p for p in policy_parts(name) if p in KV_POLICIES]
    return kv[0] if kv else "shared"


def uses_steps(name: str) -> bool:
    """Whether a name joins the step-skipping policy (`flowcache`) to its KV policy."""
    return any(p in STEP_POLICIES for p in policy_parts(name))


def policy_parameters(name: str) -> set[str]:
    """The keyword parameters `parse_policy(name, ...)` accepts (name already valid)."""
    accepted = KV_POLICIES[kv_part(name)].parameters()
    return accepted | (_FLOWCACHE_PARAMS if uses_steps(name) else set())


def parse_policy(name: str, **params: Any) -> CachePolicy:
    """A fresh policy for `name` (see the module doc); e.g. `parse_policy("flowcache+rolling", window=8)`."""
    parts = policy_parts(name)
    unknown = [p for p in parts if p not in policy_names()]
    if unknown or not parts:
        joined = "or a KV policy joined with flowcache by '+' (e.g. flowcache+forcing-kv)"
        raise unknown_policy(unknown[0] if unknown else name, policy_names(), extra=joined)
    kv = [p for p in parts if p in KV_POLICIES]
    steps = [p for p in parts if p in STEP_POLICIES]
    if len(kv) > 1 or len(steps) > 1:
        raise UsageError(
            f"cache policy {name!r} combines {' and '.join(kv if len(kv) > 1 else steps)}",
            why="one KV policy owns the cache, and flowcache can be applied once",
            fix="join at most one of recompute | shared | rolling | flowcache-kv | forcing-kv with flowcache",
        )
    entry = KV_POLICIES[kv_part(name)]
    kv_params = {k: v for k, v in params.items() if k in entry.parameters()}
    step_params = {k: v for k, v in params.items() if k in _FLOWCACHE_PARAMS}
    check_parameters(name, params, policy_parameters(name))
    policy = entry.build(kv_params)
    return FlowCache(**step_params, context=policy) if steps else policy
