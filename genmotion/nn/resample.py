"""Resampling of latent maps between the scales of a multi-scale residual quantiser.

Two kinds, chosen by `VQVAEConfig.resample`:

* `spatial` (VAR): area-average down, bicubic up;
* `spectral` (the next-frequency order): an ideal low-pass in the 2-D Fourier domain. Down keeps the p x p lowest
  frequencies of an H x W map (a crop of its centred spectrum) and samples them on a p x p grid; up places a p x p
  spectrum in the middle of an H x W one of zeros. So a p x p map holds exactly the frequencies |k| < p / 2 of the
  full map, `down(up(x)) == x`, and a residual quantised coarse to fine is split into frequency bands: each scale
  adds the band between its predecessor's cut-off and its own.

Both keep the mean (the DC term): a constant map resamples to the same constant. Shapes: (B, C, h, w) in and out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["RESAMPLE_KINDS", "resample_down", "resample_up"]

RESAMPLE_KINDS = ("spatial", "spectral")


def _resize_axis(spec: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """A centred spectrum (DC at index m // 2 of `dim`, length m) cut or zero-padded to length n about DC.

    Even lengths have one Nyquist bin (-m/2): cutting to an even n folds the +n/2 bin onto -n/2, padding from an
    even m splits the -m/2 bin in halves at -m/2 and +m/2, so real maps stay real and down(up(x)) == x.
    """
    m = spec.shape[dim]
    if n == m:
        return spec
    if n < m:
        out = spec.narrow(dim, m // 2 - n // 2, n).clone()
        if n % 2 == 0:
            out.narrow(dim, 0, 1).add_(spec.narrow(dim, m // 2 + n // 2, 1))
        return out
    shape = list(spec.shape)
    shape[dim] = n
    out = spec.new_zeros(shape)
    start = n // 2 - m // 2
    out.narrow(dim, start, m).copy_(spec)
    if m % 2 == 0:
        half = spec.narrow(dim, 0, 1) / 2
        out.narrow(dim, start, 1).copy_(half)
        out.narrow(dim, n // 2 + m // 2, 1).copy_(half)
    return out


def _centred(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) real -> its spectrum with the DC term at [h // 2, w // 2], normalised so DC = the mean."""
    return torch.fft.fftshift(torch.fft.fft2(x.float(), norm="forward"), dim=(-2, -1))


def _spectral(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    spec = _resize_axis(_resize_axis(_centred(x), size[0], -2), size[1], -1)
    return torch.fft.ifft2(torch.fft.ifftshift(spec, dim=(-2, -1)), norm="forward").real.to(x.dtype)


def resample_down(x: torch.Tensor, size: tuple[int, int], kind: str = "spatial") -> torch.Tensor:
    """(B, C, H, W) -> (B, C, *size), size <= (H, W): area average or the spectral low-pass."""
    if kind == "spatial":
        return F.interpolate(x, size=size, mode="area")
    return _spectral(x, size)


def resample_up(x: torch.Tensor, size: tuple[int, int], kind: str = "spatial") -> torch.Tensor:
    """(B, C, h, w) -> (B, C, *size), size >= (h, w): bicubic or band-limited (zero-padded spectrum)."""
    if kind == "spatial":
        return F.interpolate(x, size=size, mode="bicubic")
    return _spectral(x, size)
