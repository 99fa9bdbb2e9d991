"""Resampling of latent maps between the scales of a multi-scale residual quantiser.

Two kinds, chosen by `VQVAEConfig.resample`:

* `spatial` (VAR): area-average down, bicubic up;
* `spectral` (the next-frequency order): an ideal low-pass in the 2-D cosine (DCT-II) domain. Down keeps the p x p
  lowest-frequency coefficients of an H x W map and reads them back on a p x p grid; up places p x p coefficients in
  the low corner of H x W ones that are otherwise zero. So a p x p map holds exactly the p lowest frequencies along
  each axis, `down(up(x)) == x`, and a residual quantised coarse to fine is split into frequency bands: each scale
  adds the band between its predecessor's cut-off and its own. The cosine basis extends a map by mirroring it, so
  unlike a Fourier (periodic) low-pass nothing wraps from one edge to the opposite one.

Both keep the mean (the DC term): a constant map resamples to the same constant. Shapes: (B, C, h, w) in and out.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

__all__ = ["RESAMPLE_KINDS", "dct_matrix", "resample_down", "resample_up"]

RESAMPLE_KINDS = ("spatial", "spectral")


@lru_cache(maxsize=64)
def dct_matrix(n: int) -> torch.Tensor:
    """(n, n) orthonormal DCT-II: row k is the k-th cosine, so coefficients = D @ x and x = D.T @ coefficients."""
    i = torch.arange(n, dtype=torch.float64)
    d = torch.cos(math.pi * (i[None, :] + 0.5) * i[:, None] / n) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d


@lru_cache(maxsize=64)
def _band_matrix(n_out: int, n_in: int) -> torch.Tensor:
    """(n_out, n_in) float64: keep (or zero-pad to) the min(n_out, n_in) lowest cosines of a length-n_in axis and
    read them on n_out samples, scaled so a constant stays the same constant."""
    k = min(n_out, n_in)
    return dct_matrix(n_out)[:k].T @ dct_matrix(n_in)[:k] * math.sqrt(n_out / n_in)


def _spectral(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    rows = _band_matrix(size[0], x.shape[-2]).to(x.device, torch.float32)
    cols = _band_matrix(size[1], x.shape[-1]).to(x.device, torch.float32)
    return (rows @ x.float() @ cols.T).to(x.dtype)


def resample_down(x: torch.Tensor, size: tuple[int, int], kind: str = "spatial") -> torch.Tensor:
    """(B, C, H, W) -> (B, C, *size), size <= (H, W): area average or the cosine low-pass."""
    if kind == "spatial":
        return F.interpolate(x, size=size, mode="area")
    return _spectral(x, size)


def resample_up(x: torch.Tensor, size: tuple[int, int], kind: str = "spatial") -> torch.Tensor:
    """(B, C, h, w) -> (B, C, *size), size >= (h, w): bicubic or band-limited (zero-padded cosine coefficients)."""
    if kind == "spatial":
        return F.interpolate(x, size=size, mode="bicubic")
    return _spectral(x, size)
