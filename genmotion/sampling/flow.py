"""Flow matching (rectified flow): the linear path, its velocity target, and Euler/Heun ODE solvers.

Convention: x_t = (1 - t) x0 + t x1 with x0 noise at t = 0 and x1 data at t = 1, so sampling integrates
dx/dt = v(x, t) from t = 0 to 1 and clean data sits at `CLEAN_TIME` = 1 (what Ca2-VDM calls
"timestep 0" in its diffusion convention).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

import torch

from genmotion.errors import UsageError

__all__ = [
    "CLEAN_TIME",
    "Solver",
    "VelocityFn",
    "euler_step",
    "flow_path",
    "heun_step",
    "integrate",
    "integrate_steps",
    "timesteps",
    "velocity_target",
]

CLEAN_TIME = 1.0
VelocityFn = Callable[[torch.Tensor, float], torch.Tensor]
"""`(x, t) -> dx/dt` with x any shape and t a Python float."""
Solver = Literal["euler", "heun"]


def flow_path(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """x_t = (1 - t) x0 + t x1; a tensor t broadcasts against x (e.g. (B, 1, 1))."""
    return (1 - t) * x0 + t * x1


def velocity_target(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """d x_t / dt along the linear path: x1 - x0."""
    return x1 - x0


def timesteps(
    num_steps: int,
    schedule: Literal["uniform", "shifted"] = "uniform",
    shift: float = 3.0,
    *,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(num_steps + 1,) increasing times from 0 (noise) to 1 (data).

    "shifted" is SD3's timestep shift on the noise level s = 1 - t: s' = shift s / (1 + (shift - 1) s);
    shift > 1 spends more steps near noise.
    """
    if num_steps < 1:
        raise UsageError(f"need at least one ODE step, got {num_steps}")
    t = torch.linspace(0.0, 1.0, num_steps + 1, dtype=torch.float64, device=device)
    if schedule == "shifted":
        if shift <= 0:
            raise UsageError(f"timestep shift must be > 0, got {shift}")
        s = 1.0 - t
        t = 1.0 - shift * s / (1.0 + (shift - 1.0) * s)
    elif schedule != "uniform":
        raise UsageError(f"unknown timestep schedule {schedule!r}", fix="use 'uniform' or 'shifted'")
    return t.to(torch.float32)


def euler_step(velocity: VelocityFn, x: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    return x + (t_next - t) * velocity(x, t)


def heun_step(velocity: VelocityFn, x: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    """Second order: average the slope at x and at the Euler prediction (two model calls)."""
    h = t_next - t
    v0 = velocity(x, t)
    v1 = velocity(x + h * v0, t_next)
    return x + 0.5 * h * (v0 + v1)


_STEPS = {"euler": euler_step, "heun": heun_step}


def integrate_steps(
    velocity: VelocityFn, x: torch.Tensor, times: torch.Tensor, solver: Solver = "euler"
) -> Iterator[tuple[float, torch.Tensor]]:
    """Yield (t, x_t) after each step along `times` (increasing, e.g. from `timesteps`)."""
    step = _STEPS.get(solver)
    if step is None:
        raise UsageError(f"unknown ODE solver {solver!r}", fix=f"use one of {sorted(_STEPS)}")
    ts = [float(t) for t in times]
    for t, t_next in zip(ts[:-1], ts[1:], strict=True):
        x = step(velocity, x, t, t_next)
        yield t_next, x


def integrate(velocity: VelocityFn, x: torch.Tensor, times: torch.Tensor, solver: Solver = "euler") -> torch.Tensor:
    """Solve dx/dt = velocity(x, t) over `times`; returns x at the last time."""
    steps = integrate_steps(velocity, x, times, solver)
    for _, x in steps:  # noqa: B007  (only the last state is wanted)
        pass
    return x
