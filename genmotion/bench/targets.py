"""Acceptance targets live beside the results, in `benchmarks/targets.yaml`, not in library code: a bench
measures named values and this module compares them with the goals that file states.

Each entry is `bench: {name: {min | max: number, or is: value; about: text}}`; a value meets `min` when >= it,
`max` when <= it, `is` when equal to it. The file is found through `$GENMOTION_TARGETS`, else in the source checkout's
`benchmarks/`; an install without it reports its values with no verdict.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genmotion.errors import InputError

__all__ = ["check_targets", "target_bound", "targets_path"]


def targets_path() -> Path | None:
    """The targets file in force, or None when there is none."""
    env = os.environ.get("GENMOTION_TARGETS")
    if env:
        return Path(env)
    candidate = Path(__file__).resolve().parents[2] / "benchmarks" / "targets.yaml"
    return candidate if candidate.is_file() else None


def _goals(bench: str) -> dict[str, Mapping[str, Any]] | None:
    import yaml

    path = targets_path()
    if path is None:
        return None
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise InputError(f"cannot read the targets file {path}", why=str(e), fix="fix or remove it") from e
    return dict(data.get(bench, {}))


def target_bound(bench: str, name: str, key: str = "min") -> float | None:
    """The `min` (or `max`) of target `name` of `bench` in the targets file, or None (no file, no such bound)."""
    goal = (_goals(bench) or {}).get(name, {})
    return float(goal[key]) if key in goal else None


def _meets(value: Any, goal: Mapping[str, Any]) -> bool:
    if "is" in goal:
        return bool(value == goal["is"])
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        return False
    if "min" in goal and value < goal["min"]:
        return False
    return not ("max" in goal and value > goal["max"])


def check_targets(bench: str, measured: Mapping[str, Any], shown: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`{name: {value, target, met}}` for every target of `bench` that `measured` answers (names it does not
    measure are left out); `shown[name]`, when given, is reported as the value instead (e.g. the pair compared).
    Without a targets file every measured value is reported with `met: None`."""
    goals = _goals(bench)
    shown = shown or {}
    out: dict[str, Any] = {}
    if goals is None:
        return {name: {"value": shown.get(name, v), "target": None, "met": None} for name, v in measured.items()}
    for name, goal in goals.items():
        if name not in measured:
            continue
        value = measured[name]
        out[name] = {"value": shown.get(name, value), "target": goal.get("about", ""), "met": _meets(value, goal)}
    return out
