"""The CubeComposer sampling loop: windows causally in time; inside a window the planner's face order;
per face one flow-matching ODE solve (the core's `integrate` over `timesteps`) against a context whose
keys and values are computed once and shared by every step; then the face is cropped out of its
padding. When the window's six faces exist, every seam is cross-faded between its two predictions (each
face's own edge band and its neighbour's generated padding over it); `blend="one_sided"` instead blends
each face's padding into the neighbours already made, as soon as it is generated (CubeComposer's way).

Axes: T frames of a window, S face size, P padding pixels, Lg / Lc generated / context tokens, K token channels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from genmotion.panorama.config import CubeComposerConfig, SampleConfig
from genmotion.panorama.context import ContextPool
from genmotion.panorama.cube import blend_back, blend_seams, plan_faces
from genmotion.panorama.model import (
    CubeComposerModel,
    attention_flops,
    context_inputs,
    gen_positions,
    patchify,
    unpatchify,
)
from genmotion.sampling.flow import integrate, timesteps

__all__ = ["CallInputs", "CubeComposerSampler", "WindowCube", "call_inputs", "windows"]


@dataclass(frozen=True)
class CallInputs:
    """Batched (B = 1) tensors of one face x window call: gen_cond (1, Lg, K + p^2), gen_pos (1, Lg, 3),
    context features / role / positions / valid (1, Lc, ...) in frame slots, and the padded-face side n."""

    gen_cond: torch.Tensor
    gen_pos: torch.Tensor
    ctx_feats: torch.Tensor
    ctx_role: torch.Tensor
    ctx_pos: torch.Tensor
    ctx_valid: torch.Tensor
    frames: int
    side: int


@dataclass(frozen=True)
class WindowCube:
    """A finished window: frames [start, end), cube (T, 6, 3, S, S) in [-1, 1], the face order used."""

    index: int
    start: int
    end: int
    cube: torch.Tensor
    order: tuple[int, ...]


def windows(num_frames: int, window: int) -> list[tuple[int, int]]:
    """[start, end) of each time window."""
    return [(s, min(s + window, num_frames)) for s in range(0, num_frames, window)]


def call_inputs(
    pool: ContextPool, face: int, start: int, end: int, made: dict[int, torch.Tensor], sample: SampleConfig
) -> CallInputs:
    """Everything the model reads for one call, positions relative to the window start."""
    cfg = pool.config
    target = pool.target(face, start, end, made)
    ctx = pool.context(face, start, end, made)
    p = cfg.patch
    gen_cond = torch.cat([patchify(target.cond, p), patchify(target.mask, p)], dim=-1).flatten(0, 1)
    gen_pos = gen_positions(cfg, face, target.times - start, sample.rope).to(gen_cond)
    feats, role, pos, valid = context_inputs(ctx, cfg, sample.rope)
    pos = pos.clone()
    pos[:, 0] -= start
    side = cfg.cells + 2 * cfg.pad_cells
    return CallInputs(
        gen_cond[None],
        gen_pos[None],
        feats[None],
        role[None],
        pos[None],
        valid[None],
        end - start,
        side,
    )


class CubeComposerSampler:
    """Generates a 360 cube video from a cube condition, window by window."""

    def __init__(self, model: CubeComposerModel, sample: SampleConfig) -> None:
        self.model, self.sample = model, sample
        self.config: CubeComposerConfig = model.config
        self.calls = 0
        self.attention_pairs = 0  # query-key products of the last stream, one layer (the bench reads it)

    @torch.no_grad()
    def face(self, inputs: CallInputs, generator: torch.Generator) -> torch.Tensor:
        """One ODE solve: the padded face window (T, 3, S + 2P, S + 2P)."""
        m, K = self.model, self.config.token_channels
        Lg = inputs.gen_cond.shape[1]
        dtype = next(m.parameters()).dtype
        noise = torch.randn(1, Lg, K, generator=generator, device=inputs.gen_cond.device).to(dtype)
        cond = inputs.gen_cond.to(dtype)
        if self.sample.attention == "sparse":
            state = m.encode_context(inputs.ctx_feats.to(dtype), inputs.ctx_role, inputs.ctx_pos, inputs.ctx_valid)

            def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
                return m.velocity(torch.cat([x, cond], -1), x.new_full((1,), t), inputs.gen_pos, state)
        else:
            ctx = (inputs.ctx_feats.to(dtype), inputs.ctx_role, inputs.ctx_pos)

            def velocity(x: torch.Tensor, t: float) -> torch.Tensor:
                return m.velocity_full(
                    torch.cat([x, cond], -1), x.new_full((1,), t), inputs.gen_pos, ctx, inputs.ctx_valid
                )

        times = timesteps(self.sample.num_steps)
        x = integrate(velocity, noise, times, self.sample.solver)
        self.calls += 1
        slot = 6 * self.config.cells**2
        self.attention_pairs += attention_flops(Lg, inputs.ctx_valid[0], slot, self.sample.attention == "sparse")
        return unpatchify(x[0].float().reshape(inputs.frames, -1, K), self.config.patch, inputs.side).clamp(-1, 1)

    def stream(self, cond: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> Iterator[WindowCube]:
        """cond (N, 6, 3, S, S), mask (N, 6, 1, S, S) -> finished windows in time order."""
        cfg, P = self.config, self.config.pad_pixels
        pool = ContextPool(cond, mask, cfg, self.sample)
        self.calls, self.attention_pairs = 0, 0
        for index, (s, e) in enumerate(windows(cond.shape[0], cfg.window)):
            order = plan_faces(mask[s:e], self.sample.order)
            cube = torch.zeros_like(cond[s:e])
            made: dict[int, torch.Tensor] = {}
            padded: dict[int, torch.Tensor] = {}
            blend = self.sample.blend if P and self.sample.padding else None
            for f in order:
                padded[f] = self.face(call_inputs(pool, f, s, e, made, self.sample), generator)
                cube[:, f] = (
                    padded[f][..., P : padded[f].shape[-2] - P, P : padded[f].shape[-1] - P] if P else padded[f]
                )
                if blend == "one_sided":
                    blend_back(cube, padded[f], f, P, into=set(made))
                made = {g: cube[:, g] for g in (*made, f)}
            if blend == "both":
                cube = blend_seams(cube, padded, P)
            pool.add_window(s, cube)
            yield WindowCube(index, s, e, cube, tuple(order))
