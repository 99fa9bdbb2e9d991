"""Strict configuration: frozen keyword-only dataclasses <-> YAML, with `a.b=c` overrides.

One loader for every config in the suite. Unknown keys and wrong types are errors that name the
dotted key, so a typo in a YAML recipe or a `--set` flag never passes silently.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from genmotion.errors import InputError, UsageError

__all__ = [
    "apply_overrides",
    "from_dict",
    "load_config",
    "load_yaml",
    "replace",
    "save_config",
    "to_dict",
]

T = TypeVar("T")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from `path`; errors name the file."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise InputError(f"config file {p} does not exist", fix="check the path")
    try:
        data = yaml.load(p.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: ~10x faster
    except yaml.YAMLError as e:
        raise InputError(f"config file {p} is not valid YAML", why=str(e).splitlines()[0]) from e
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read config file {p}", why=f"{type(e).__name__}: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"config file {p} must hold a mapping at the top level, not {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of `data` with each `a.b.c=value` applied; values are parsed as YAML scalars."""
    import copy

    import yaml

    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"override {item!r} has no '='", fix="write it as key.sub=value, e.g. trainer.devices=2")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise UsageError(f"override key {key!r} is empty or has an empty part")
        node = out
        for p in parts[:-1]:
            child = node.get(p)
            if child is None:
                child = node[p] = {}
            if not isinstance(child, dict):
                raise UsageError(f"override {key!r}: {p!r} is a value, not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce_union(value: Any, tp: Any, key: str) -> Any:
    """The first member of the union `tp` that accepts `value` (None only where the union allows it)."""
    for arg in get_args(tp):
        if arg is type(None):
            if value is None:
                return None
            continue
        try:
            return _coerce(value, arg, key)
        except UsageError:
            pass
    raise UsageError(f"config key {key!r} has value {value!r}, which is not a {_type_name(tp)}")


def _coerce_literal(value: Any, tp: Any, key: str) -> Any:
    """One of the Literal's choices; a number given for a text choice (`--set trainer.precision=32`) is its text."""
    choices = get_args(tp)
    if value not in choices and not isinstance(value, bool) and str(value) in choices:
        value = str(value)
    if value not in choices:
        raise UsageError(f"config key {key!r} is {value!r}", fix=f"use one of {list(choices)}")
    return value


def _coerce_sequence(value: Any, tp: Any, key: str) -> Any:
    """A list or tuple annotation (`tuple[X, ...]`, `tuple[X, Y]`, `list[X]`, `Sequence[X]`), item by item."""
    origin = get_origin(tp)
    if not isinstance(value, (list, tuple)):
        raise UsageError(f"config key {key!r} must be a list, not {value!r}")
    args = get_args(tp)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        items = [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    elif origin is tuple and args:
        if len(args) != len(value):
            raise UsageError(f"config key {key!r} needs {len(args)} items, got {len(value)}")
        items = [_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(args, value, strict=True))]
    else:
        a = args[0] if args else Any
        items = [_coerce(v, a, f"{key}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else list(items)


def _coerce_float(value: Any, key: str) -> float:
    if isinstance(value, str):  # YAML 1.1 reads `1e-3` (no dot) as a string: accept what float() reads
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"config key {key!r} must be a number, not {value!r}")
    return float(value)


_SCALARS: dict[type, tuple[tuple[type, ...], str]] = {  # annotation -> (accepted types, what the error says)
    int: ((int,), "an integer"),
    bool: ((bool,), "true or false"),
    str: ((str,), "a string"),
}


def _coerce_scalar(value: Any, tp: type, key: str) -> Any:
    """int, bool and str exactly (a bool is not an int here), any other class by isinstance."""
    accepted, what = _SCALARS.get(tp, ((tp,), f"a {tp.__name__}"))
    if not isinstance(value, accepted) or (tp is int and isinstance(value, bool)):
        raise UsageError(f"config key {key!r} must be {what}, not {value!r}")
    return value


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp` and convert lists to tuples where asked."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        return _coerce_union(value, tp, key)
    if origin is typing.Literal:
        return _coerce_literal(value, tp, key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise UsageError(f"config key {key!r} must be a section (mapping), not {value!r}")
        return from_dict(tp, value, prefix=key)  # type: ignore[arg-type]
    if origin in (tuple, list, Sequence):
        return _coerce_sequence(value, tp, key)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise UsageError(f"config key {key!r} must be a mapping, not {value!r}")
        return dict(value)
    if tp is float:
        return _coerce_float(value, key)
    if isinstance(tp, type):
        return _coerce_scalar(value, tp, key)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build dataclass `cls` from `data`, strictly: unknown keys and wrong types raise `UsageError`."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        name = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise UsageError(
            f"unknown config key {name!r}",
            why=f"{cls.__name__} has no field {unknown[0]!r}",
            fix=f"valid keys here: {', '.join(sorted(fields))}",
        )
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            fix = f"add {key}: <value> to the YAML or --set {key}=..."
            raise UsageError(f"config key {key!r} is required", fix=fix)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise UsageError(f"config section {prefix or cls.__name__!r} is not valid", why=str(e)) from e


def to_dict(obj: Any) -> Any:
    """Plain YAML-ready data (dicts, lists, scalars) from a dataclass tree."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def load_config(cls: type[T], path: str | Path, overrides: Sequence[str] = ()) -> T:
    """YAML file + `a.b=c` overrides -> `cls`, strictly."""
    return from_dict(cls, apply_overrides(load_yaml(path), overrides))


def save_config(obj: Any, path: str | Path) -> None:
    """Write a dataclass tree as YAML (atomically)."""
    import os

    import yaml

    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(yaml.safe_dump(to_dict(obj), sort_keys=False))
    os.replace(tmp, p)


def replace(obj: T, overrides: Sequence[str]) -> T:
    """A copy of dataclass `obj` with `a.b=c` overrides applied, checked like a YAML file."""
    return from_dict(type(obj), apply_overrides(to_dict(obj), overrides))
