"""Fidelity and temporal metrics of `genmotion bench cache`: latents (any model) and decoded frames (uint8).

Axes: B batch, F frames, N tokens per frame, C latent channels; frames are (T, H, W, 3) uint8.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from genmotion.metrics import mse, psnr

__all__ = ["chunk_discontinuity", "frame_fidelity", "latent_fidelity", "ssim", "temporal_flicker"]


def latent_fidelity(out: torch.Tensor, exact: torch.Tensor) -> dict[str, float | None]:
    """MSE and max |diff| of latents, and PSNR after mapping both to [0, 1] by the exact output's range."""
    lo, hi = exact.min(), exact.max()
    unit = lambda x: ((x - lo) / (hi - lo)).clamp(0, 1)
    db = psnr(unit(out), unit(exact), data_range=1.0)
    return {
        "mse": float((out - exact).pow(2).mean()),
        "max_abs_diff": float((out - exact).abs().max()),
        "psnr_db": None if math.isinf(db) else db,
    }


def temporal_flicker(latents_BFNC: torch.Tensor, lo: float, hi: float) -> float:
    """(1 - mean |frame_t - frame_t+1|) on values mapped to [0, 1] by [lo, hi] (uint8 frames: 255 -> 1)."""
    x = ((latents_BFNC - lo) / (hi - lo)).clamp(0, 1)
    return 1.0 - float((x[:, 1:] - x[:, :-1]).abs().mean())


def chunk_discontinuity(latents_BFNC: torch.Tensor, frames_per_chunk: int) -> float:
    """Mean frame-difference magnitude at chunk boundaries over the mean of all consecutive pairs (1 = seamless).

    A pair's magnitude is the mean |frame_t+1 - frame_t|; a boundary pair ends at a chunk's first frame.
    Works on any (B, F, ...) tensor (latents, or frames as (1, T, H, W, 3)).
    """
    x = latents_BFNC.float()
    diffs = (x[:, 1:] - x[:, :-1]).abs().mean(dim=tuple(d for d in range(x.dim()) if d != 1))  # (F - 1,)
    boundary = (torch.arange(1, x.shape[1]) % frames_per_chunk) == 0
    if not bool(boundary.any()) or float(diffs.mean()) == 0.0:
        return 1.0
    return float(diffs[boundary].mean() / diffs.mean())


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim(a_THW3: np.ndarray, b_THW3: np.ndarray, *, size: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004: Gaussian 11x11, sigma 1.5, K1 0.01, K2 0.03, L 255) of two uint8 videos,
    over frames, RGB channels and the valid window positions (the window shrinks to fit small frames)."""
    x, y = (torch.from_numpy(np.asarray(v)).to(torch.float64).permute(0, 3, 1, 2) for v in (a_THW3, b_THW3))
    T, C, H, W = x.shape
    size = min(size, H, W)
    window = _gaussian_window(size, sigma).expand(C, 1, size, size)
    blur = lambda z: F.conv2d(z, window, groups=C)
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def frame_fidelity(frames: np.ndarray, exact: np.ndarray, frames_per_chunk: int) -> dict[str, float | None]:
    """PSNR (dB, None when identical) and SSIM of uint8 frames vs the exact ones, and the frames' own flicker
    and chunk-discontinuity ratio."""
    db = psnr(frames, exact, data_range=255.0)
    video = torch.from_numpy(np.asarray(frames))[None]  # (1, T, H, W, 3)
    return {
        "frame_mse": mse(frames, exact),
        "frame_psnr_db": None if math.isinf(db) else db,
        "frame_ssim": ssim(frames, exact),
        "frame_flicker": temporal_flicker(video.float(), 0.0, 255.0),
        "frame_discontinuity_ratio": chunk_discontinuity(video, frames_per_chunk),
    }
