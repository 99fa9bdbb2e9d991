"""Tiny VFMF models and clips shared by the world tests (16 x 16 frames, patch 8, widths 16-32)."""

from __future__ import annotations

import numpy as np
import torch

from genmotion.world.config import DecoderConfig, EncoderConfig, ForecasterConfig, LatentConfig, VFMFConfig
from genmotion.world.model import VFMFModel

TINY = VFMFConfig(
    encoder=EncoderConfig(image_size=16, patch_size=8, width=16, depth=2, heads=2, layers=(0, 1), pos_grid=2),
    vae=LatentConfig(feature_dim=32, latent_dim=4, hidden=32, blocks=1),
    decoder=DecoderConfig(feature_dim=32, patch_size=8, hidden=16, pixel_channels=8, depth_bins=8),
    forecaster=ForecasterConfig(latent_dim=4, grid=2, width=16, depth=2, heads=2),
)


def tiny_model(seed: int = 0, config: VFMFConfig = TINY) -> VFMFModel:
    """A seeded tiny model whose zero-initialised layers (gates, heads) are filled so every path matters."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VFMFModel(config)
        for p in model.parameters():
            if p.ndim >= 1 and not p.detach().abs().sum():
                torch.nn.init.normal_(p, std=0.1)
    return model.eval()


def tiny_clip(frames: int = 4, size: int = 16, seed: int = 0) -> np.ndarray:
    """uint8 frames (T, size, size, 3) of a toy-world scene."""
    from genmotion.data.toyworld.raycast import render_perspective
    from genmotion.data.toyworld.scene3d import sample_scene

    scene = sample_scene(torch.Generator().manual_seed(seed))
    return render_perspective(scene, [2.0 * i for i in range(frames)], size, size, fov_deg=70).rgb.numpy()
