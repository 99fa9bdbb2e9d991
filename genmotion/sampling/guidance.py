"""Classifier-free guidance, one convention for every generator: `guidance_scale` s, 1 = off,
guided = uncond + s * (cond - uncond), with per-step schedules (constant, or VAR's linear ramp).

VAR's official `cfg` is this convention's s - 1: its `(1 + t) cond - t uncond` with t = cfg * k / (K - 1) is
`guide(cond, uncond, 1 + t)`, so official cfg 1.5 is guidance_scale 2.5 here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from genmotion.errors import UsageError

__all__ = ["GuidanceSchedule", "constant_schedule", "guidance_schedule", "guide", "linear_ramp_schedule"]

GuidanceSchedule = Callable[[int, int], float]
"""`(step, num_steps) -> guidance scale of that step` for step in [0, num_steps)."""


def guide(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """uncond + scale * (cond - uncond) (any matching shapes: logits or velocities); scale 1 returns `cond`."""
    if scale == 1.0:
        return cond
    return torch.lerp(uncond, cond, scale)


def linear_ramp_schedule(scale: float) -> GuidanceSchedule:
    """VAR's ramp: 1 (no guidance) at the coarsest step rising linearly to `scale` at the last (`scale` for K = 1)."""

    def schedule(step: int, num_steps: int) -> float:
        return scale if num_steps <= 1 else 1.0 + (scale - 1.0) * step / (num_steps - 1)

    return schedule


def constant_schedule(scale: float) -> GuidanceSchedule:
    def schedule(step: int, num_steps: int) -> float:
        return scale

    return schedule


def guidance_schedule(name: Literal["linear", "constant"], scale: float) -> GuidanceSchedule:
    """A schedule by name, as configs spell it."""
    if name == "linear":
        return linear_ramp_schedule(scale)
    if name == "constant":
        return constant_schedule(scale)
    raise UsageError(f"unknown guidance schedule {name!r}", fix="use 'linear' or 'constant'")
