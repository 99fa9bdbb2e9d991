"""Classifier-free guidance with per-step schedules (VAR's linear ramp, constant).

Convention (VAR): guided = (1 + t) * cond - t * uncond, so t = 0 is the conditional output alone and
t = s - 1 is the usual `uncond + s * (cond - uncond)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from genmotion.errors import UsageError

__all__ = ["GuidanceSchedule", "cfg_combine", "constant_schedule", "guidance_schedule", "linear_ramp_schedule"]

GuidanceSchedule = Callable[[int, int], float]
"""`(step, num_steps) -> t` for step in [0, num_steps)."""


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """(1 + scale) * cond - scale * uncond (any matching shapes: logits or velocities)."""
    if scale == 0.0:
        return cond
    return torch.lerp(uncond, cond, 1.0 + scale)


def linear_ramp_schedule(cfg: float) -> GuidanceSchedule:
    """VAR: t = cfg * step / (K - 1), from 0 at the coarsest scale to cfg at the last (cfg for K = 1)."""

    def schedule(step: int, num_steps: int) -> float:
        return cfg if num_steps <= 1 else cfg * step / (num_steps - 1)

    return schedule


def constant_schedule(cfg: float) -> GuidanceSchedule:
    def schedule(step: int, num_steps: int) -> float:
        return cfg

    return schedule


def guidance_schedule(name: Literal["linear", "constant"], cfg: float) -> GuidanceSchedule:
    """A schedule by name, as configs spell it."""
    if name == "linear":
        return linear_ramp_schedule(cfg)
    if name == "constant":
        return constant_schedule(cfg)
    raise UsageError(f"unknown guidance schedule {name!r}", fix="use 'linear' or 'constant'")
