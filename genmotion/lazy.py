"""Lazy package attributes: a generator package names its public API in `__all__` and imports each name from
its module on first use, so importing the package (as `genmotion --help` does) loads no torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: `where[name]` is the submodule (relative to the package) that
    defines `name`; any other name is an AttributeError, as for a normal module."""

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
