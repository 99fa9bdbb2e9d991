"""The joint-position diffusion of RigAnything's MAR-style head: a cosine noise schedule, the forward
noising used in training, and respaced ancestral (DDPM) sampling with an explicit generator.

Axes: M rows (one per joint step being sampled), C context width.
"""

from __future__ import annotations

import math

import torch

from genmotion.rigging.model import Denoiser

__all__ = ["cosine_alphas_cumprod", "noise", "sample_positions", "denoising_error"]


def cosine_alphas_cumprod(steps: int, s: float = 0.008) -> torch.Tensor:
    """(steps,) cumulative signal fractions of the cosine schedule (Nichol & Dhariwal), in float64."""
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, dim=0)


def noise(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps for integer steps t (same leading shape as x0[..., 0])."""
    a = alphas_cumprod.to(x0.device)[t].to(x0.dtype)[..., None]
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


@torch.no_grad()
def sample_positions(
    denoiser: Denoiser,
    context_MC: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    steps: int,
    generator: torch.Generator | None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Draw one position (M, 3) per context row by `steps` respaced ancestral steps from pure noise;
    `temperature` scales the injected noise (MAR's tau)."""
    T = len(alphas_cumprod)
    times = torch.linspace(T - 1, 0, steps, dtype=torch.float64).round().long().unique_consecutive()
    M, dev, dt = context_MC.shape[0], context_MC.device, context_MC.dtype
    x = torch.randn(M, 3, generator=generator, device=dev, dtype=dt)
    ac = alphas_cumprod
    for i, t in enumerate(times.tolist()):
        a_t = float(ac[t])
        a_prev = float(ac[times[i + 1]]) if i + 1 < len(times) else 1.0
        eps = denoiser(x, torch.full((M,), t, device=dev), context_MC)
        x0 = ((x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)).clamp(-3.0, 3.0)
        if a_prev >= 1.0:
            x = x0
            break
        beta = 1 - a_t / a_prev  # the respaced step's variance
        mean = (math.sqrt(a_prev) * beta / (1 - a_t)) * x0 + (math.sqrt(1 - beta) * (1 - a_prev) / (1 - a_t)) * x
        var = beta * (1 - a_prev) / (1 - a_t)
        z = torch.randn(M, 3, generator=generator, device=dev, dtype=dt)
        x = mean + temperature * math.sqrt(var) * z
    return x


@torch.no_grad()
def denoising_error(
    denoiser: Denoiser,
    context_MC: torch.Tensor,
    x0_M3: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    generator: torch.Generator | None,
    levels: int = 4,
) -> torch.Tensor:
    """(M,) mean squared noise-prediction error of x0 at `levels` evenly spaced noise levels: a Monte-Carlo
    stand-in for -log p(x0) up to constants (lower = more likely), used to rank sampled skeletons."""
    T = len(alphas_cumprod)
    total = torch.zeros(x0_M3.shape[0], device=x0_M3.device, dtype=x0_M3.dtype)
    for t in torch.linspace(T * 0.1, T * 0.9, levels).long().tolist():
        eps = torch.randn(x0_M3.shape, generator=generator, device=x0_M3.device, dtype=x0_M3.dtype)
        tt = torch.full((x0_M3.shape[0],), t, device=x0_M3.device)
        pred = denoiser(noise(x0_M3, tt, eps, alphas_cumprod), tt, context_MC)
        total += ((pred - eps) ** 2).sum(-1)
    return total / levels
