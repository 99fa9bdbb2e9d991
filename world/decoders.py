"""Read-outs of VFMF features: per-pixel semantic segmentation, depth as classification over log-spaced
bins, surface normals and RGB, from the feature grid through a shared trunk and an 8x sub-pixel
up-sampling (a DPT-lite head).

Axes: B images, h x w patch grid, F feature channels, p patch size, H = h p, W = w p, Q depth bins.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from genmotion.world.config import DecoderConfig

__all__ = ["DecodedFrames", "FeatureDecoders", "depth_bin_centres", "depth_to_bins"]


class DecodedFrames(NamedTuple):
    """seg_logits (B, classes, H, W); depth_logits (B, Q, H, W); normals (B, 3, H, W) unit;
    rgb (B, 3, H, W) in [-1, 1]."""

    seg_logits: torch.Tensor
    depth_logits: torch.Tensor
    normals: torch.Tensor
    rgb: torch.Tensor


def depth_bin_centres(config: DecoderConfig, device: torch.device | None = None) -> torch.Tensor:
    """(Q,) log-spaced depths from depth_min to depth_max."""
    lo, hi = math.log(config.depth_min), math.log(config.depth_max)
    return torch.linspace(lo, hi, config.depth_bins, device=device).exp()


def depth_to_bins(depth: torch.Tensor, config: DecoderConfig) -> torch.Tensor:
    """Depth (...) -> nearest bin index (...) in log space (int64)."""
    lo, hi = math.log(config.depth_min), math.log(config.depth_max)
    u = (depth.clamp(config.depth_min, config.depth_max).log() - lo) / (hi - lo)
    return (u * (config.depth_bins - 1)).round().long()


class FeatureDecoders(nn.Module):
    """Standardised features (B, h, w, F) -> `DecodedFrames` at (H, W) = (h p, w p)."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        c = self.config = config
        self.trunk = nn.Sequential(
            nn.Conv2d(c.feature_dim, c.hidden, 1),
            nn.GELU(),
            nn.Conv2d(c.hidden, c.hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(c.hidden, c.pixel_channels * c.patch_size**2, 1),
        )
        self.refine = nn.Sequential(
            nn.Conv2d(c.pixel_channels, c.pixel_channels, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(c.pixel_channels, c.pixel_channels, 3, padding=1),
            nn.GELU(),
        )
        self.seg = nn.Conv2d(c.pixel_channels, c.num_classes, 1)
        self.depth = nn.Conv2d(c.pixel_channels, c.depth_bins, 1)
        self.normals = nn.Conv2d(c.pixel_channels, 3, 1)
        self.rgb = nn.Conv2d(c.pixel_channels, 3, 1)

    def forward(self, features_BhwF: torch.Tensor) -> DecodedFrames:
        x = self.trunk(features_BhwF.permute(0, 3, 1, 2))
        x = F.pixel_shuffle(x, self.config.patch_size)
        x = x + self.refine(x)
        normals = F.normalize(self.normals(x), dim=1, eps=1e-6)
        return DecodedFrames(self.seg(x), self.depth(x), normals, torch.tanh(self.rgb(x)))

    def expected_depth(self, depth_logits: torch.Tensor) -> torch.Tensor:
        """(B, Q, H, W) -> depth (B, H, W): the softmax-weighted mean of the bins in log space."""
        logs = depth_bin_centres(self.config, depth_logits.device).log()
        return (depth_logits.softmax(1) * logs[None, :, None, None]).sum(1).exp()
