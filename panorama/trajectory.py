"""The camera-path file of `genmotion panorama --trajectory`: per-frame yaw, pitch, roll (degrees) and an
optional field of view, checked against the input video.

    {"yaw": [0, 1.5, ...], "pitch": [0, 0, ...], "roll": [0, 0, ...], "fov": 90}

`yaw` > 0 turns right, `pitch` > 0 looks up, `roll` > 0 tilts the image clockwise; `roll` may be left
out (0), `fov` (horizontal, degrees, in (10, 170)) is a number or one per frame and defaults to `--fov`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from genmotion.errors import InputError
from genmotion.panorama.config import FOV_RANGE, check_fov
from genmotion.panorama.data import Trajectory

__all__ = ["FOV_RANGE", "check_fov", "load_trajectory", "parse_trajectory"]

_FIELDS = ("yaw", "pitch", "roll", "fov")


def _series(data: dict[str, Any], name: str, frames: int, default: float | None, source: str) -> torch.Tensor:
    value = data.get(name, default)
    if value is None:
        raise InputError(f"{source} has no {name!r}", fix=f'add "{name}": [one angle in degrees per frame]')
    if isinstance(value, int | float) and not isinstance(value, bool) and name in ("roll", "fov"):
        value = [value] * frames
    if not isinstance(value, list) or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise InputError(f"{source}: {name!r} must be a list of numbers", fix=f'write e.g. "{name}": [0, 1.5, 3]')
    if len(value) != frames:
        raise InputError(
            f"{source}: {name!r} has {len(value)} values but the video has {frames} frames",
            fix="give one value per input frame",
        )
    out = torch.tensor(value, dtype=torch.float32)
    if not bool(torch.isfinite(out).all()):
        raise InputError(f"{source}: {name!r} holds a non-finite number")
    return out


def parse_trajectory(data: Any, frames: int, default_fov: float = 90.0, source: str = "the trajectory") -> Trajectory:
    """Check a decoded trajectory object against a video of `frames` frames (InputError otherwise)."""
    if not isinstance(data, dict):
        raise InputError(f"{source} is not a JSON object", fix='write {"yaw": [...], "pitch": [...]}')
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise InputError(f"{source} has unknown fields {unknown}", fix=f"use only {list(_FIELDS)}")
    yaw, pitch = _series(data, "yaw", frames, None, source), _series(data, "pitch", frames, None, source)
    roll, fov = _series(data, "roll", frames, 0.0, source), _series(data, "fov", frames, default_fov, source)
    bad = [float(f) for f in fov if not FOV_RANGE[0] < float(f) < FOV_RANGE[1]]
    if bad:
        raise InputError(f"{source}: fov {bad[0]} is outside (10, 170) degrees", fix="give horizontal FoVs, e.g. 90")
    return Trajectory(yaw, pitch, roll, fov)


def load_trajectory(path: str | Path, frames: int, default_fov: float = 90.0) -> Trajectory:
    """Read and check a trajectory JSON file for a video of `frames` frames."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError as e:
        raise InputError(f"trajectory file {p} does not exist", fix="check the --trajectory path") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read trajectory {p}", why=str(e), fix="give a JSON file (see docs)") from e
    return parse_trajectory(data, frames, default_fov, source=f"trajectory {p.name}")
