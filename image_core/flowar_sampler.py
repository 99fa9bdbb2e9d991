"""FlowAR sampling: coarse to fine over doubling scales through VAR's KV cache, each scale's tokens drawn by
integrating the flow head's ODE over all of the scale's tokens at once with Euler steps (`genmotion.sampling.flow`).

Per scale s of S: the transformer runs the scale's input once against the cache (giving z per token); then
`num_steps` Euler steps carry noise to the scale's latent. Guidance uses cfg_s = 1 + (cfg - 1) s / (S - 1)
(none at the coarsest scale, the full cfg at the last), v = v_u + cfg_s (v_c - v_u), and only at flow times
t <= `guidance_interval` (t = 1 is noise, 0 is data); the batch is doubled only when guidance is on.

The core's flow loop (`genmotion.engine.flow`) integrates a chunk against a cache policy per ODE step; FlowAR
runs the transformer once per scale and integrates only the small head, so it uses the core's solver and
timesteps directly. Randomness comes only from the `generator` passed in.

Axis legend: B batch, l tokens of one scale, C latent channels, Wz width of z, pn scale side.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from genmotion.image_core.flowar_config import FlowARSamplingConfig
from genmotion.image_core.flowar_model import FlowARImageModel, next_scale_input
from genmotion.image_core.labels import guided_labels
from genmotion.sampling.flow import integrate, timesteps

__all__ = ["FlowARScale", "guidance_ramp", "sample_flowar_images", "sample_head", "stream_flowar_scales"]


@dataclass(frozen=True)
class FlowARScale:
    """What one scale produced: its normalised latent (B, C, pn, pn) and the transformer outputs z (B, l, Wz)
    of its conditional rows."""

    scale_index: int
    latent: torch.Tensor
    z: torch.Tensor


def guidance_ramp(guidance_scale: float, scale_index: int, num_scales: int) -> float:
    """cfg_s = 1 + (cfg - 1) s / (S - 1): 1 at the coarsest scale, cfg at the last."""
    return 1.0 + (guidance_scale - 1.0) * scale_index / max(num_scales - 1, 1)


@torch.no_grad()
def sample_head(
    head: nn.Module,
    z_RlW: torch.Tensor,
    noise_BlC: torch.Tensor,
    *,
    num_steps: int | None = None,
    times: torch.Tensor | None = None,
    guidance_scale: float = 1.0,
    guidance_interval: float = 1.0,
) -> torch.Tensor:
    """Integrate the head's ODE from noise (t = 1) to data (t = 0) with Euler steps: (B, l, C).

    head: (x_t (B, l, C), t (B,), z (B, l, Wz)) -> velocity (B, l, C) (`build_flow_head`, the official `FlowNet`).
    z_RlW: (B, l, Wz), or (2B, l, Wz) = conditional rows then unconditional rows when guidance is on; guidance
    1 is off (the conditional rows alone). The steps: `num_steps` uniform ones, or along `times` (decreasing
    flow times from 1 to 0, e.g. the official schedule).
    """
    B = noise_BlC.shape[0]
    guided = z_RlW.shape[0] == 2 * B and guidance_scale != 1.0
    z_cond = z_RlW[:B]

    def velocity(x_BlC: torch.Tensor, tau: float) -> torch.Tensor:
        # The core integrates dx/dtau from tau = 0 (noise) to 1 (data); the head's time is t = 1 - tau and its
        # velocity d x_t / dt = eps - x, so dx/dtau = -head(x, 1 - tau).
        t = 1.0 - tau
        if guided and t <= guidance_interval:
            v_c, v_u = head(x_BlC.repeat(2, 1, 1), x_BlC.new_full((2 * B,), t), z_RlW).chunk(2)
            return -(v_u + guidance_scale * (v_c - v_u))
        return -head(x_BlC, x_BlC.new_full((B,), t), z_cond)

    if times is not None and num_steps is None:
        taus = 1.0 - times
    elif num_steps is not None and times is None:
        taus = timesteps(num_steps, device=noise_BlC.device)
    else:
        raise ValueError("pass exactly one of num_steps and times")
    return integrate(velocity, noise_BlC, taus)


@torch.no_grad()
def stream_flowar_scales(
    model: FlowARImageModel,
    labels_B: torch.Tensor,
    *,
    generator: torch.Generator,
    settings: FlowARSamplingConfig,
) -> Iterator[FlowARScale]:
    """Sample scale by scale, yielding each scale's normalised latent as soon as it exists.

    labels_B: (B,) class ids (`num_classes` = unconditional).
    """
    var = model.var
    B, C, pns = labels_B.shape[0], var.Cvae, model.patch_nums
    labels, guided = guided_labels(labels_B, var.num_classes, settings.guidance_scale)
    conditions = var.class_conditions(labels)
    like = conditions.cond_BD
    cache = var.new_cache(labels.shape[0], dtype=like.dtype, device=like.device)
    x_in = var.start_tokens(like)
    for si, pn in enumerate(pns):
        begin, end = var.config.scale_slices[si]
        positions = torch.arange(begin, end, device=like.device)
        z = var.forward_scale(x_in.to(like.dtype), conditions, cache, positions_l=positions)  # R, l, Wz
        noise = torch.randn(B, pn * pn, C, generator=generator, device=generator.device).to(like.device)
        x_BlC = sample_head(
            model.head, z, noise, num_steps=settings.num_steps,
            guidance_scale=guidance_ramp(settings.guidance_scale, si, len(pns)),
            guidance_interval=settings.guidance_interval,
        )  # fmt: skip
        latent = x_BlC.transpose(1, 2).reshape(B, C, pn, pn).float()
        yield FlowARScale(si, latent, z[:B])
        if si + 1 < len(pns):
            nxt = next_scale_input(latent, pns[si + 1], pns[-1]).flatten(2).transpose(1, 2)
            x_in = var.scale_tokens(si + 1, nxt)
            x_in = x_in.repeat(2, 1, 1) if guided else x_in


@torch.no_grad()
def sample_flowar_images(
    model: FlowARImageModel, labels_B: torch.Tensor, *, generator: torch.Generator, settings: FlowARSamplingConfig
) -> torch.Tensor:
    """Images (B, 3, H, W) in [-1, 1]."""
    last = list(stream_flowar_scales(model, labels_B, generator=generator, settings=settings))[-1]
    return model.vae.decode(model.denormalise(last.latent))
