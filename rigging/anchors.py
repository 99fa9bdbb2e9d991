"""The anchored joint-position head: the next joint = the centre of a shape token chosen by a pointer
(classification over the geometry the model sees) + a small offset drawn by the diffusion or regression head.

Training targets: the pointer learns a soft label over the tokens whose centres are nearest the true joint;
the offset head learns the joint's offset from each of its `NEAREST` nearest centres. Sampling: the anchor is
drawn among the `anchor_candidates` most likely tokens, then its offset.

Axes: B batch, K joint steps, S shape tokens, M candidate anchors per step, R rows (samples), C width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genmotion.rigging.diffusion import denoising_error, noise, sample_positions
from genmotion.rigging.model import RigAnything, gather_rows

__all__ = ["NEAREST", "AnchorDraw", "anchor_losses", "draw_positions", "offset_error"]

NEAREST = 4  # offsets are trained from this many nearest token centres of every true joint
TAU = 0.02  # the pointer's soft label: softmax(-(d - d_nearest) / TAU) over token centres


@dataclass(frozen=True)
class AnchorDraw:
    """One step's draw for R rows: positions (R, 3), the anchor's log-probability (R,), the head's context
    (R, C) and the scaled offset (R, 3) (for the likelihood estimate of the diffusion head)."""

    positions: torch.Tensor
    logp: torch.Tensor
    context: torch.Tensor
    offset: torch.Tensor


def anchor_losses(
    model: RigAnything,
    h_BKC: torch.Tensor,
    shape_BSC: torch.Tensor,
    centres_BS6: torch.Tensor,
    target_BK3: torch.Tensor,
    alphas: torch.Tensor,
    noise_samples: int,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-step pointer cross-entropy (B, K), offset loss (B, K) (diffusion noise MSE or squared regression
    error, scaled units) and the pointer's argmax distance to the joint (B, K) (normalised units)."""
    c = model.config
    d = torch.cdist(target_BK3, centres_BS6[..., :3])  # (B, K, S)
    soft = torch.softmax(-(d - d.amin(-1, keepdim=True)) / TAU, dim=-1)
    logits = model.anchor_logits(h_BKC, shape_BSC)
    pointer = -(soft * torch.log_softmax(logits, dim=-1)).sum(-1)
    near = d.topk(min(NEAREST, d.shape[-1]), dim=-1, largest=False).indices  # (B, K, M)
    ctx = model.anchor_context(h_BKC, shape_BSC, centres_BS6, near)  # (B, K, M, C)
    B, K, M = near.shape
    anchor_xyz = gather_rows(centres_BS6[..., :3], near.reshape(B, K * M, 1))[:, :, 0].reshape(B, K, M, 3)
    x0 = (target_BK3[:, :, None] - anchor_xyz) / c.offset_scale  # (B, K, M, 3)
    if model.denoiser is not None:
        n = noise_samples
        t = torch.randint(0, len(alphas), (B, K, M, n), device=x0.device, generator=generator)
        eps = torch.randn(B, K, M, n, 3, device=x0.device, generator=generator)
        x0n = x0[:, :, :, None].expand(-1, -1, -1, n, -1)
        pred = model.denoiser(noise(x0n, t, eps, alphas), t, ctx[:, :, :, None].expand(-1, -1, -1, n, -1))
        offset = ((pred - eps) ** 2).mean(dim=(-1, -2, -3))
    else:
        offset = ((model.regress(ctx) - x0) ** 2).sum(-1).mean(-1)
    hit = d.gather(-1, logits.argmax(-1, keepdim=True))[..., 0]
    return pointer, offset, hit


def draw_positions(
    model: RigAnything,
    h_RC: torch.Tensor,
    shape_RSC: torch.Tensor,
    centres_RS6: torch.Tensor,
    alphas: torch.Tensor,
    sample_steps: int,
    temperature: float,
    generator: torch.Generator | None,
) -> AnchorDraw:
    """Draw one next-joint position per row: the anchor among the most likely `anchor_candidates` tokens
    (softmax at `temperature`; 0 = the most likely), then its offset."""
    c = model.config
    logits = model.anchor_logits(h_RC[:, None], shape_RSC)[:, 0].float()  # (R, S)
    top, idx = logits.topk(c.anchor_candidates, dim=-1)
    logp = torch.log_softmax(top / max(temperature, 1e-6), dim=-1)
    if temperature <= 0:
        pick = torch.zeros(len(idx), 1, dtype=torch.long, device=idx.device)
    else:
        pick = torch.multinomial(logp.exp(), 1, generator=generator)
    anchor = idx.gather(1, pick)  # (R, 1)
    ctx = model.anchor_context(h_RC[:, None], shape_RSC, centres_RS6, anchor[:, None])[:, 0, 0]  # (R, C)
    if model.denoiser is not None:
        x0 = sample_positions(model.denoiser, ctx, alphas.to(ctx.dtype), sample_steps, generator, max(temperature, 0))
    else:
        x0 = model.regress(ctx)
    centre = gather_rows(centres_RS6[..., :3], anchor[:, None])[:, 0, 0]  # (R, 3)
    return AnchorDraw(centre + c.offset_scale * x0, logp.gather(1, pick)[:, 0], ctx, x0)


def offset_error(
    model: RigAnything,
    context_MC: torch.Tensor,
    x0_M3: torch.Tensor,
    alphas: torch.Tensor,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """(M,) the diffusion head's denoising error of scaled offsets (a stand-in for -log p); zeros for regression."""
    if model.denoiser is None:
        return x0_M3.new_zeros(x0_M3.shape[0])
    return denoising_error(model.denoiser, context_MC, x0_M3, alphas.to(context_MC.dtype), generator)
