"""The chunked causal flow loop (Ca2-VDM, CubeComposer, VFMF, diffusion heads), written once.

For each chunk of frames: draw noise, integrate the flow ODE where every evaluation runs the model on
the noisy chunk against the committed context (the cache policy decides how), then commit the clean
chunk so later chunks see it at `CLEAN_TIME`. `flow_stream` yields each chunk as soon as it is clean;
`flow_generate` consumes it. Axes: B batch, F frames, N tokens per frame, C latent channels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch

from genmotion.errors import UsageError
from genmotion.kv.protocol import CachePolicy, FlowModel, FrameLayout
from genmotion.sampling.flow import Solver, integrate, timesteps

__all__ = ["FlowChunk", "FlowLoopConfig", "flow_generate", "flow_stream"]


@dataclass(frozen=True, kw_only=True)
class FlowLoopConfig:
    """Sampling settings of the flow loop (the model and its layout are given separately)."""

    num_frames: int
    num_steps: int = 8
    solver: Solver = "euler"
    schedule: Literal["uniform", "shifted"] = "uniform"
    shift: float = 3.0

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.num_steps < 1:
            raise ValueError(f"need num_frames >= 1 and num_steps >= 1, got {self.num_frames}, {self.num_steps}")

    @property
    def evaluations_per_chunk(self) -> int:
        return self.num_steps * (2 if self.solver == "heun" else 1)


@dataclass(frozen=True)
class FlowChunk:
    """One clean chunk: `latents` (B, F, N, C) for frames [start_frame, start_frame + F)."""

    index: int
    start_frame: int
    latents: torch.Tensor


def _as_tokens(frames_BFNC: torch.Tensor, layout: FrameLayout) -> torch.Tensor:
    B, F, N, C = frames_BFNC.shape
    if (N, C) != (layout.tokens_per_frame, layout.channels):
        raise UsageError(
            f"prefix frames shaped {tuple(frames_BFNC.shape)} do not match the layout "
            f"({layout.tokens_per_frame} tokens x {layout.channels} channels per frame)"
        )
    return frames_BFNC.reshape(B, F * N, C)


@torch.no_grad()
def _denoise(
    model: FlowModel,
    policy: CachePolicy,
    noise_BLC: torch.Tensor,
    times: torch.Tensor,
    config: FlowLoopConfig,
    start_frame: int,
) -> torch.Tensor:
    policy.begin_chunk(start_frame, config.evaluations_per_chunk, times=[float(t) for t in times])

    def velocity(x_BLC: torch.Tensor, t: float) -> torch.Tensor:
        return policy.velocity(model, x_BLC, t, start_frame=start_frame)

    return integrate(velocity, noise_BLC, times, config.solver)


@torch.no_grad()
def _commit(model: FlowModel, policy: CachePolicy, clean_BLC: torch.Tensor, start_frame: int) -> None:
    policy.commit(model, clean_BLC, start_frame=start_frame)


def flow_stream(
    model: FlowModel,
    policy: CachePolicy,
    layout: FrameLayout,
    config: FlowLoopConfig,
    *,
    generator: torch.Generator | None,
    batch: int = 1,
    prefix_BFNC: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    model_at: Callable[[int], FlowModel] | None = None,
    project: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
) -> Iterator[FlowChunk]:
    """Yield `config.num_frames` new frames chunk by chunk, after the optional clean `prefix_BFNC` context.

    The model is a pure velocity function (see `FlowModel`); noise comes only from `generator`. The last
    chunk is not committed, since nothing reads it. `model_at(frame)`: the model of the chunk that starts at
    `frame` and of the commit just before it (a prompt schedule: each prompt's condition bound once, the
    committed frames then read as the next prompt sees them); default `model` throughout. `project(clean
    (B, F*N, C), start_frame) -> (B, F*N, C)`: what a generated chunk is committed as (e.g. decoded and
    re-encoded by the autoencoder); the chunk yielded and the prefix are not projected.
    """
    bound = model_at or (lambda frame: model)
    prefix_frames = 0 if prefix_BFNC is None else prefix_BFNC.shape[1]
    if prefix_BFNC is not None:
        batch, device, dtype = prefix_BFNC.shape[0], prefix_BFNC.device, prefix_BFNC.dtype
    like = torch.empty(0, device=device, dtype=dtype)
    policy.start(model, layout, batch=batch, max_frames=prefix_frames + config.num_frames, like=like)
    if prefix_BFNC is not None:
        _commit(bound(prefix_frames), policy, _as_tokens(prefix_BFNC, layout), 0)
    times = timesteps(config.num_steps, config.schedule, config.shift)
    N, C = layout.tokens_per_frame, layout.channels
    frame, end, index = prefix_frames, prefix_frames + config.num_frames, 0
    while frame < end:
        frames = min(layout.frames_per_chunk, end - frame)
        noise = torch.randn(batch, frames * N, C, generator=generator, device=like.device, dtype=dtype)
        clean = _denoise(bound(frame), policy, noise, times, config, frame)
        yield FlowChunk(index=index, start_frame=frame, latents=clean.view(batch, frames, N, C))
        if frame + frames < end:
            _commit(bound(frame + frames), policy, clean if project is None else project(clean, frame), frame)
        frame, index = frame + frames, index + 1


def flow_generate(
    model: FlowModel, policy: CachePolicy, layout: FrameLayout, config: FlowLoopConfig, **options: Any
) -> torch.Tensor:
    """All new frames (B, num_frames, N, C): `flow_stream` collected (same keywords: generator, batch, ...)."""
    return torch.cat([c.latents for c in flow_stream(model, policy, layout, config, **options)], dim=1)
