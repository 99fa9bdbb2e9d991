"""Panorama quality measures: masked PSNR, SSIM, the seam error across the 12 cube edges, temporal flicker.

Axes: N frames, S face size; pixels in [-1, 1] unless said otherwise.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from genmotion.panorama.cube import PAD_TABLE, pad_faces

__all__ = ["flicker", "psnr_masked", "seam_error", "seam_parts", "ssim"]


def psnr_masked(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR (dB, peak 255) of x against y over the pixels where `mask` (broadcastable) is 1; inf if equal,
    nan if the mask is empty."""
    m = mask.expand_as(x).float()
    n = float(m.sum())
    if n == 0:
        return float("nan")
    mse = float((((x - y) * 127.5) ** 2 * m).sum()) / n
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def ssim(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean SSIM of images (..., 3, H, W) in [-1, 1] (7x7 uniform windows, peak 2)."""
    a, b = x.reshape(-1, *x.shape[-3:]).float(), y.reshape(-1, *y.shape[-3:]).float()
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    pool = lambda z: F.avg_pool2d(z, 7, 1, 3, count_include_pad=False)
    mu_a, mu_b = pool(a), pool(b)
    va, vb, cov = pool(a * a) - mu_a**2, pool(b * b) - mu_b**2, pool(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
    return float(s.mean())


_LATERAL = {0, 1, 2, 3}  # F R B L: the four edges around the horizon; the other eight touch U or D


def _side_jumps(cube_N6CSS: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """(kind, mean |jump|) of the 24 face sides (each of the 12 edges seen from both faces): the face's last
    pixel against the neighbour's first, read through the padder; kind "lateral" or "top_bottom"."""
    padded = pad_faces(cube_N6CSS, 1)  # (N, 6, C, S + 2, S + 2)
    out = []
    for f in range(6):
        p = padded[:, f]
        for side, (g, _, _) in PAD_TABLE[f].items():
            if side == "top":
                jump = p[..., 0, 1:-1] - p[..., 1, 1:-1]
            elif side == "bottom":
                jump = p[..., -1, 1:-1] - p[..., -2, 1:-1]
            elif side == "left":
                jump = p[..., 1:-1, 0] - p[..., 1:-1, 1]
            else:
                jump = p[..., 1:-1, -1] - p[..., 1:-1, -2]
            out.append(("lateral" if {f, g} <= _LATERAL else "top_bottom", jump.abs().mean()))
    return out


def _interior_jump(cube_N6CSS: torch.Tensor) -> torch.Tensor:
    inner_x = (cube_N6CSS[..., 1:] - cube_N6CSS[..., :-1]).abs().mean()
    inner_y = (cube_N6CSS[..., 1:, :] - cube_N6CSS[..., :-1, :]).abs().mean()
    return (0.5 * (inner_x + inner_y)).clamp(min=1e-8)


def seam_error(cube_N6CSS: torch.Tensor) -> float:
    """Mean absolute jump across the 12 cube edges (the face's last pixel against the neighbour's first,
    read through the padder) divided by the mean jump between neighbouring pixels inside the faces.
    1 means seams look like the interior; the ground truth's own value is the floor to compare with."""
    jumps = torch.stack([j for _, j in _side_jumps(cube_N6CSS)])
    return float(jumps.mean() / _interior_jump(cube_N6CSS))


def seam_parts(cube_N6CSS: torch.Tensor) -> dict[str, float]:
    """The parts of `seam_error`: the interior's mean jump (in [-1, 1] units), the mean jump across the
    4 lateral edges (F-R, R-B, B-L, L-F) and across the 8 edges of U and D, each also over the interior."""
    interior = _interior_jump(cube_N6CSS)
    sides = _side_jumps(cube_N6CSS)
    out = {"interior_jump": float(interior)}
    for kind in ("lateral", "top_bottom"):
        jump = torch.stack([j for k, j in sides if k == kind]).mean()
        out[f"{kind}_jump"] = float(jump)
        out[f"{kind}_seam"] = float(jump / interior)
    return out


def flicker(frames_N: torch.Tensor) -> float:
    """(255 - mean |frame_t - frame_t+1|) / 255 over [-1, 1] frames (N, ...); 1 = perfectly still."""
    if frames_N.shape[0] < 2:
        return 1.0
    diff = float((frames_N[1:] - frames_N[:-1]).abs().mean()) * 127.5
    return (255.0 - diff) / 255.0
