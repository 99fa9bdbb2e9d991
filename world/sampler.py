"""VFMF's autoregressive rollout on the core's chunked flow loop: one latent frame per chunk, denoised by
Euler steps of the forecaster's velocity against a sliding window of the last `window` clean frames, the
new frame then committed to the window (the oldest dropped, so memory stays flat). Two cache policies, by
name through `parse_policy`: `recompute` (`WindowRecompute`) runs the whole window at every evaluation;
`window-kv` (`WindowKV`) computes the window's temporal keys and values once per frame and runs only the noisy
frame against them (equal up to float rounding, since temporal attention is causal). The deterministic baseline
rolls out with the same window.

Axes: B samples, W window frames, N tokens per frame, K latent channels, L = N tokens of one chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from genmotion.engine.flow import FlowLoopConfig, flow_stream
from genmotion.errors import UsageError
from genmotion.kv.naming import PolicyEntry, build_named
from genmotion.kv.protocol import FrameLayout, PolicyBase
from genmotion.world.forecaster import KV, SpaceTimeForecaster

__all__ = ["POLICIES", "WindowKV", "WindowPolicy", "WindowRecompute", "forecast_stream", "parse_policy"]


class WindowPolicy(PolicyBase):
    """A cache policy holding the last `window` committed latent frames (B, N, K) each."""

    def __init__(self, window: int) -> None:
        super().__init__()
        if window < 1:
            raise UsageError(f"the context window must hold >= 1 frame, got {window}")
        self.window = window
        self.frames: list[torch.Tensor] = []

    def start(self, model: Any, layout: FrameLayout, *, batch: int, max_frames: int, like: torch.Tensor) -> None:
        self.layout, self.frames = layout, []

    def commit(self, model: Any, clean_BLC: torch.Tensor, *, start_frame: int) -> None:
        layout = self._layout()
        B = clean_BLC.shape[0]
        for frame in clean_BLC.view(B, -1, layout.tokens_per_frame, layout.channels).unbind(1):
            self.frames.append(frame)
        self.frames = self.frames[-self.window :]
        self._changed()

    def _changed(self) -> None:
        return None

    def velocity(self, model: Any, x_BLC: torch.Tensor, t: float, *, start_frame: int) -> torch.Tensor:
        """Velocity (B, L, K) of the noisy frame given the window (or, for regression, the next frame)."""
        raise NotImplementedError

    def context(self) -> torch.Tensor:
        """(B, W, N, K) the window's frames, oldest first."""
        if not self.frames:
            raise UsageError("the forecaster needs at least one context frame", fix="pass context frames")
        return torch.stack(self.frames, dim=1)

    def bytes_held(self) -> int:
        return sum(f.numel() * f.element_size() for f in self.frames)


class WindowRecompute(WindowPolicy):
    """Every evaluation runs the forecaster over [window, noisy frame]."""

    def velocity(self, model: Any, x_BLC: torch.Tensor, t: float, *, start_frame: int) -> torch.Tensor:
        ctx = self.context()
        B, W = ctx.shape[:2]
        times = torch.ones(B, W + 1, device=x_BLC.device, dtype=x_BLC.dtype)
        times[:, -1] = t
        x = torch.cat([ctx, x_BLC[:, None]], dim=1)
        self.stats.forwards_run += 1
        self.stats.tokens_processed += x.shape[0] * x.shape[1] * x.shape[2]
        return model(x, times, torch.arange(W + 1, device=x.device))[:, -1]


class WindowKV(WindowPolicy):
    """The window's temporal keys and values per block, computed once per new frame and reused by every
    evaluation of it."""

    def __init__(self, window: int) -> None:
        super().__init__(window)
        self.kv: list[KV] | None = None

    def _changed(self) -> None:
        self.kv = None

    def velocity(self, model: Any, x_BLC: torch.Tensor, t: float, *, start_frame: int) -> torch.Tensor:
        ctx = self.context()
        if self.kv is None:
            self.kv = model.context_kv(ctx, torch.arange(ctx.shape[1], device=ctx.device))
            self.stats.tokens_processed += ctx.shape[0] * ctx.shape[1] * ctx.shape[2]
        self.stats.forwards_run += 1
        self.stats.tokens_processed += x_BLC.shape[0] * x_BLC.shape[1]
        t_B = torch.full((x_BLC.shape[0],), float(t), device=x_BLC.device, dtype=x_BLC.dtype)
        return model.step(x_BLC, t_B, ctx.shape[1], self.kv)

    def bytes_held(self) -> int:
        kv = sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in self.kv or [])
        return super().bytes_held() + kv


_WINDOW = ("the world model's cache policies need window", "pass window=... (frames held, the max_context)")
POLICIES: dict[str, PolicyEntry[WindowPolicy]] = {
    "window-kv": PolicyEntry(WindowKV, required={"window": _WINDOW}),
    "recompute": PolicyEntry(WindowRecompute, required={"window": _WINDOW}),
}


def parse_policy(name: str, **params: Any) -> WindowPolicy:
    """A fresh policy by name, in the shape and name convention of every cache policy (`genmotion.kv.naming`):
    `window-kv` (`WindowKV`) or `recompute` (`WindowRecompute`), each taking `window` (frames held, required);
    e.g. `parse_policy("window-kv", window=4)`. An unknown name or parameter is a UsageError."""
    return build_named(POLICIES, name, params)


@torch.no_grad()
def forecast_stream(
    model: SpaceTimeForecaster,
    context_BTNK: torch.Tensor,
    horizon: int,
    *,
    generator: torch.Generator,
    num_steps: int = 10,
    cache: bool = True,
    policy: WindowPolicy | None = None,
) -> Iterator[torch.Tensor]:
    """Yield each future latent frame (B, N, K) after the clean context (B, T, N, K). Flow models sample on
    `flow_stream` (noise from `generator`); regression models predict the frame directly."""
    B, T, N, K = context_BTNK.shape
    window = model.config.max_context
    policy = policy or parse_policy("window-kv" if cache else "recompute", window=window)
    if model.config.objective == "regression":
        yield from _regression_stream(model, policy, context_BTNK, horizon)
        return
    layout = FrameLayout(tokens_per_frame=N, channels=K, frames_per_chunk=1)
    config = FlowLoopConfig(num_frames=horizon, num_steps=num_steps)
    for chunk in flow_stream(model, policy, layout, config, generator=generator, prefix_BFNC=context_BTNK):
        yield chunk.latents[:, 0]


def _regression_stream(
    model: SpaceTimeForecaster, policy: WindowPolicy, context_BTNK: torch.Tensor, horizon: int
) -> Iterator[torch.Tensor]:
    B, T, N, K = context_BTNK.shape
    layout = FrameLayout(tokens_per_frame=N, channels=K, frames_per_chunk=1)
    policy.start(model, layout, batch=B, max_frames=T + horizon, like=context_BTNK)
    policy.commit(model, context_BTNK.reshape(B, T * N, K), start_frame=0)
    for i in range(horizon):
        slot = torch.zeros(B, N, K, device=context_BTNK.device, dtype=context_BTNK.dtype)
        frame = policy.velocity(model, slot, 0.0, start_frame=T + i)
        yield frame
        policy.commit(model, frame, start_frame=T + i)
