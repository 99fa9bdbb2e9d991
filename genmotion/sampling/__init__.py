"""Sampling: token samplers with explicit generators, guidance schedules, flow-matching paths and solvers."""

from genmotion.sampling.flow import (
    CLEAN_TIME,
    Solver,
    VelocityFn,
    euler_step,
    flow_path,
    heun_step,
    integrate,
    integrate_steps,
    timesteps,
    velocity_target,
)
from genmotion.sampling.guidance import (
    GuidanceSchedule,
    constant_schedule,
    guidance_schedule,
    guide,
    linear_ramp_schedule,
)
from genmotion.sampling.logits import (
    LogitsProcessor,
    Sampler,
    apply_processors,
    force_tokens,
    gumbel_noise,
    gumbel_softmax,
    sample_logits,
    top_k_filter,
    top_p_filter,
)

__all__ = [
    "CLEAN_TIME",
    "GuidanceSchedule",
    "LogitsProcessor",
    "Sampler",
    "Solver",
    "VelocityFn",
    "apply_processors",
    "constant_schedule",
    "euler_step",
    "force_tokens",
    "flow_path",
    "guidance_schedule",
    "guide",
    "gumbel_noise",
    "gumbel_softmax",
    "heun_step",
    "integrate",
    "integrate_steps",
    "linear_ramp_schedule",
    "sample_logits",
    "timesteps",
    "top_k_filter",
    "top_p_filter",
    "velocity_target",
]
