"""The anchored joint-position head: the next joint = an anchor chosen by a pointer + a small offset drawn by
the diffusion or regression head. The anchors of step k are the earlier joints 0..k-1 (the next joint grows
from one of them: its parent); step 0 (the root) has one anchor, the origin of the normalised space. So a
3-D regression of where the joint is becomes a classification over joints the model has already placed and
the bone vector from the chosen one, which is ambiguous only between siblings (the diffusion head's job).

Anchor table index 0 is the origin, index i + 1 is joint i. Axes: B batch, K joint steps, J joints,
A = J + 1 anchors, R rows (samples), C width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from genmotion.rigging.diffusion import denoising_error, noise, sample_positions
from genmotion.rigging.model import RigAnything, direction_labels

__all__ = [
    "AnchorDraw",
    "AnchorTable",
    "anchor_losses",
    "anchor_mask",
    "anchor_table",
    "draw_positions",
    "offset_error",
    "snap_inside",
]


@dataclass(frozen=True)
class AnchorDraw:
    """One step's draw for R rows: positions (R, 3), the log-probability of the anchor (and of the direction class,
    where the model has them) (R,), the anchor (R,) (table index), the offset head's context (R, C) and the scaled
    offset (R, 3) (for the diffusion likelihood estimate)."""

    positions: torch.Tensor
    logp: torch.Tensor
    anchor: torch.Tensor
    context: torch.Tensor
    offset: torch.Tensor


class AnchorTable(NamedTuple):
    """What the position head draws from: anchor features (B, A, C), anchor geometry (B, A, 6) = (position,
    position - its parent's), and the shape around the anchors (contextual shape tokens (B, S, C), their
    centres (B, S, 3)) for models with `local_tokens`."""

    feat: torch.Tensor
    geo: torch.Tensor
    shape: tuple[torch.Tensor, torch.Tensor] | None = None


def anchor_table(
    begin_BC: torch.Tensor,
    joint_BJC: torch.Tensor,
    joints_BJ3: torch.Tensor,
    parents_BJ: torch.Tensor,
    shape: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> AnchorTable:
    """The anchor table of the origin (feature: the begin token's output) and the joints (their token
    outputs; parents (B, J), root's -> 0); `shape` = (shape token outputs (B, S, C), centres (B, S, 3))."""
    B = joint_BJC.shape[0]
    parent_xyz = torch.gather(joints_BJ3, 1, parents_BJ.clamp(min=0)[..., None].expand(-1, -1, 3))
    geo = torch.cat([joints_BJ3, joints_BJ3 - parent_xyz], dim=-1)
    feat = torch.cat([begin_BC[:, None], joint_BJC], dim=1)
    return AnchorTable(feat, torch.cat([geo.new_zeros(B, 1, 6), geo], dim=1), shape)


def anchor_mask(steps: int, anchors: int, device: torch.device | None = None) -> torch.Tensor:
    """(K, A) allowed anchors: step 0 only the origin, step k >= 1 the joints 0..k-1 (table 1..k)."""
    k = torch.arange(steps, device=device)[:, None]
    a = torch.arange(anchors, device=device)[None]
    return torch.where(k == 0, a == 0, (a >= 1) & (a <= k))


def anchor_losses(
    model: RigAnything,
    h_BKC: torch.Tensor,
    table: AnchorTable,
    goal_BK: torch.Tensor,
    target_BK3: torch.Tensor,
    alphas: torch.Tensor,
    noise_samples: int,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-step pointer cross-entropy (B, K) against the true anchor `goal` (table index), offset loss (B, K)
    (diffusion noise MSE or squared regression error, scaled units), pointer accuracy (B, K) and the direction
    class cross-entropy (B, K) (zeros for a model without `direction_bins`; the offset head is then given the
    true class)."""
    c = model.config
    feat, geo = table.feat, table.geo
    B, K, _ = h_BKC.shape
    logits = model.anchor_logits(h_BKC, feat).masked_fill(~anchor_mask(K, feat.shape[1], h_BKC.device), -1e9)
    pointer = F.cross_entropy(logits.flatten(0, 1), goal_BK.flatten(), reduction="none").view(B, K)
    idx = goal_BK[..., None]  # (B, K, 1)
    ctx = model.anchor_context(h_BKC, feat, geo, idx, table.shape)[:, :, 0]  # (B, K, C)
    anchor_xyz = torch.gather(geo[..., :3], 1, goal_BK[..., None].expand(-1, -1, 3))
    x0 = (target_BK3 - anchor_xyz) / c.offset_scale
    direction = x0.new_zeros(B, K)
    if model.direction_head is not None:
        label = direction_labels(x0, model.directions)
        logits_d = model.direction_logits(ctx)
        direction = F.cross_entropy(logits_d.flatten(0, 1), label.flatten(), reduction="none").view(B, K)
        ctx = model.with_direction(ctx, label)
    if model.denoiser is not None:
        n = noise_samples
        t = torch.randint(0, len(alphas), (B, K, n), device=x0.device, generator=generator)
        eps = torch.randn(B, K, n, 3, device=x0.device, generator=generator)
        x0n = x0[:, :, None].expand(-1, -1, n, -1)
        pred = model.denoiser(noise(x0n, t, eps, alphas), t, ctx[:, :, None].expand(-1, -1, n, -1))
        offset = ((pred - eps) ** 2).mean(dim=(-1, -2))
    else:
        offset = ((model.regress(ctx) - x0) ** 2).sum(-1)
    return pointer, offset, (logits.argmax(-1) == goal_BK).float(), direction


def draw_positions(
    model: RigAnything,
    h_RC: torch.Tensor,
    table: AnchorTable,
    step: int,
    alphas: torch.Tensor,
    sample_steps: int,
    temperature: float,
    generator: torch.Generator | None,
    anchor_temperature: float | None = None,
) -> AnchorDraw:
    """Draw step `step`'s joint per row from the anchor table (R, A, C), (R, A, 6) (A >= step + 1): the anchor
    among the `anchor_candidates` most likely allowed ones (softmax at `anchor_temperature`, default
    `temperature`; 0 = the most likely), then its offset (noise at `temperature`)."""
    c = model.config
    feat, geo = table.feat, table.geo
    allowed = anchor_mask(step + 1, feat.shape[1], h_RC.device)[step]
    logits = model.anchor_logits(h_RC[:, None], feat)[:, 0].float().masked_fill(~allowed, float("-inf"))
    top, idx = logits.topk(min(c.anchor_candidates, int(allowed.sum())), dim=-1)
    tau = temperature if anchor_temperature is None else anchor_temperature
    logp = torch.log_softmax(top / max(tau, 1e-6), dim=-1)
    if tau <= 0:
        pick = torch.zeros(len(idx), 1, dtype=torch.long, device=idx.device)
    else:
        pick = torch.multinomial(logp.exp(), 1, generator=generator)
    anchor = idx.gather(1, pick)  # (R, 1)
    ctx = model.anchor_context(h_RC[:, None], feat, geo, anchor[:, None], table.shape)[:, 0, 0]  # (R, C)
    chosen = logp.gather(1, pick)[:, 0]
    if model.direction_head is not None:  # the direction class first, then the offset given it
        logp_d = torch.log_softmax(model.direction_logits(ctx).float() / max(temperature, 1e-6), dim=-1)
        if temperature <= 0:
            label = logp_d.argmax(dim=-1)
        else:
            label = torch.multinomial(logp_d.exp(), 1, generator=generator)[:, 0]
        ctx = model.with_direction(ctx, label)
        chosen = chosen + logp_d.gather(1, label[:, None])[:, 0]
    if model.denoiser is not None:
        x0 = sample_positions(model.denoiser, ctx, alphas.to(ctx.dtype), sample_steps, generator, max(temperature, 0))
    else:
        x0 = model.regress(ctx)
    base = torch.gather(geo[..., :3], 1, anchor[..., None].expand(-1, -1, 3))[:, 0]  # (R, 3)
    return AnchorDraw(base + c.offset_scale * x0, chosen, anchor[:, 0], ctx, x0)


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


def snap_inside(x_R3: torch.Tensor, points_RN6: torch.Tensor, width: float = 0.05) -> torch.Tensor:
    """Joints (R, 3) that fall outside the surface (points (R, N, 6): xyz + outward normal) are moved onto the
        medial point under their nearest surface point p: p - (t / 2) n, where t is the depth at which the inward
        ray from p meets the opposite wall (the nearest point within `width` of the ray, past p, whose normal
    faces away from n). Without such a
        point the joint goes `width` / 2 under p. Joints already inside are kept."""
    xyz, nrm = points_RN6[..., :3], points_RN6[..., 3:]
    near = (xyz - x_R3[:, None]).norm(dim=-1).argmin(dim=-1)  # (R,)
    p = xyz[torch.arange(len(near)), near]
    n = nrm[torch.arange(len(near)), near]
    outside = ((x_R3 - p) * n).sum(-1) > 0
    rel = xyz - p[:, None]  # (R, N, 3)
    t = -(rel * n[:, None]).sum(-1)  # depth along the inward ray
    off_ray = (rel + t[..., None] * n[:, None]).norm(dim=-1)
    facing = (nrm * n[:, None]).sum(-1) < 0  # the opposite wall faces the other way
    t = torch.where((t > 1e-3) & (off_ray < width) & facing, t, torch.full_like(t, float("inf"))).amin(dim=-1)
    depth = torch.where(torch.isfinite(t), t / 2, torch.full_like(t, width / 2))
    return torch.where(outside[:, None], p - depth[:, None] * n, x_R3)
