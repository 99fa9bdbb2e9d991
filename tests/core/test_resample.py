"""genmotion.nn.resample: the spectral (next-frequency) resampling keeps exactly the lowest cosine frequencies,
is inverted by its own downsampling, keeps constants constant and does not wrap around the edges; `spatial` is
VAR's area/bicubic; a quantiser with `resample: spectral` splits the latent into frequency bands, coarse to fine."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from genmotion.nn.quantizer import MultiScaleQuantizer
from genmotion.nn.resample import resample_down, resample_up
from genmotion.nn.vqvae_config import VQVAEConfig


def _wave(size: int, kx: int, ky: int) -> torch.Tensor:
    """(1, 1, size, size) the cosine cos(pi kx (x + 1/2) / size) cos(pi ky (y + 1/2) / size)."""
    y, x = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    return (torch.cos(math.pi * kx * x / size) * torch.cos(math.pi * ky * y / size)).float()[None, None]


@pytest.mark.parametrize(("p", "size"), [(1, 8), (2, 8), (3, 8), (4, 8), (6, 8), (3, 7), (5, 12)])
def test_down_inverts_up(p, size):
    x = torch.randn(2, 3, p, p, generator=torch.Generator().manual_seed(p))
    up = resample_up(x, (size, size), "spectral")
    assert up.shape == (2, 3, size, size) and up.dtype == x.dtype
    torch.testing.assert_close(resample_down(up, (p, p), "spectral"), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(up.mean((-2, -1)), x.mean((-2, -1)), atol=1e-5, rtol=0)


def test_low_frequencies_pass_and_high_ones_are_cut():
    low, high = _wave(8, 3, 1), _wave(8, 5, 2)
    # a frequency the 4x4 grid can hold survives down then up unchanged; one it cannot hold vanishes
    torch.testing.assert_close(resample_up(resample_down(low, (4, 4), "spectral"), (8, 8), "spectral"), low,
                               atol=1e-5, rtol=0)  # fmt: skip
    assert resample_down(high, (4, 4), "spectral").abs().max() < 1e-5
    # the area average lets part of the high one through: the two kinds really differ
    assert F.interpolate(high, size=(4, 4), mode="area").abs().max() > 0.1


def test_spectral_does_not_wrap_around():
    x = torch.zeros(1, 1, 8, 8)
    x[..., :, :2] = 1.0  # a bar at the left edge
    down = resample_down(x, (2, 2), "spectral")
    assert down[..., :, 0].min() > 0.4 and down[..., :, 1].max() < 0.1  # the right half stays dark


def test_spatial_is_vars_area_and_bicubic():
    x = torch.randn(1, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(resample_down(x, (3, 3)), F.interpolate(x, size=(3, 3), mode="area"))
    small = x[..., :3, :3]
    torch.testing.assert_close(resample_up(small, (8, 8)), F.interpolate(small, size=(8, 8), mode="bicubic"))


def test_spectral_quantiser_splits_the_latent_into_bands():
    cfg = VQVAEConfig(vocab_size=64, latent_channels=4, channels=8, channel_mult=(1, 2), norm_groups=4,
                      patch_nums=(1, 2, 4, 8), resample="spectral", quant_resi=0.0)  # fmt: skip
    q = MultiScaleQuantizer(cfg)
    f = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    indices, f_hats = q.f_to_indices(f), q.f_to_fhats(f)
    assert [i.shape for i in indices] == [(2, 1), (2, 4), (2, 16), (2, 64)]
    # without phi, scale k adds only frequencies a pn_k grid holds: the first scale is a constant map
    first = f_hats[0]
    torch.testing.assert_close(first, first.mean((-2, -1), keepdim=True).expand_as(first))
    second = f_hats[1] - f_hats[0]  # band of the 2x2 grid: unchanged by a spectral round trip through 2x2
    torch.testing.assert_close(resample_up(resample_down(second, (2, 2), "spectral"), (8, 8), "spectral"), second,
                               atol=1e-5, rtol=0)  # fmt: skip
    torch.testing.assert_close(q.indices_to_fhat(indices), f_hats[-1], atol=1e-5, rtol=0)


def test_unknown_resample_kind_is_refused():
    with pytest.raises(ValueError, match="resample"):
        VQVAEConfig(resample="wavelet")
