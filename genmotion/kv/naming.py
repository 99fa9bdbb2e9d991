"""Cache policies by name: the one constructor shape every generator's policy table shares.

Every family of cache policies (the flow models' `genmotion.cache.parse_policy`, VAR's
`genmotion.image_core.kv_policies.parse_policy`, the world model's `genmotion.world.sampler.parse_policy`) is built
by `parse_policy(name: str, **params) -> policy`. Names are lower-case, words joined by `-` (`forcing-kv`,
`window-kv`), matched after stripping blanks and lower-casing; parameters are keywords. An unknown name, a
parameter the policy does not take, or a missing required one is a `UsageError` saying what and how to fix it.

A table maps each name to a `PolicyEntry` (what builds it, the parameters it takes, their defaults);
`build_named` looks a name up in one and builds it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from genmotion.errors import UsageError

__all__ = ["PolicyEntry", "build_named", "check_parameters", "normalise", "unknown_policy"]

P = TypeVar("P")


def normalise(name: str) -> str:
    """A policy name as tables hold it: " Full " -> "full"."""
    return name.strip().lower()


def unknown_policy(name: str, names: Iterable[str], *, extra: str = "") -> UsageError:
    """The error for a name no table holds: "unknown cache policy 'x'. use one of a | b[, extra]."."""
    fix = f"use one of {' | '.join(names)}" + (f", {extra}" if extra else "")
    return UsageError(f"unknown cache policy {name!r}", fix=fix)


def check_parameters(name: str, params: Collection[str], accepted: Collection[str]) -> None:
    """Raise a UsageError naming the first parameter in `params` that the policy `name` does not accept."""
    extra = sorted(set(params) - set(accepted))
    if extra:
        fix = f"use one of {sorted(accepted)}" if accepted else f"{name} takes no parameters: pass none"
        raise UsageError(f"cache policy {name!r} takes no parameter {extra[0]!r}", fix=fix)


@dataclass(frozen=True)
class PolicyEntry(Generic[P]):
    """How a name builds its policy: `make(**kwargs)`; the keywords it takes are `accepts` or, when that is None,
    `make`'s own signature (so they are written once); `defaults` are added under the caller's keywords, and for
    each required parameter `required` holds the (what, fix) of the error raised when it is missing or None."""

    make: Callable[..., P]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    required: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    accepts: frozenset[str] | None = None

    def parameters(self) -> set[str]:
        """The keyword parameters this entry takes."""
        return set(self.accepts if self.accepts is not None else inspect.signature(self.make).parameters)

    def build(self, params: Mapping[str, Any]) -> P:
        """A fresh policy from `params` (already checked against `parameters()`)."""
        kwargs = {**self.defaults, **params}
        for param, (what, fix) in self.required.items():
            if kwargs.get(param) is None:
                raise UsageError(what, fix=fix)
        return self.make(**kwargs)


def build_named(table: Mapping[str, PolicyEntry[P]], name: str, params: Mapping[str, Any]) -> P:
    """The policy `table[name]` built from `params`, with the usage errors of the module doc."""
    key = normalise(name)
    if key not in table:
        raise unknown_policy(key or name, table)
    entry = table[key]
    check_parameters(key, params, entry.parameters())
    return entry.build(params)
