"""Tiny FlowAR configs shared by the FlowAR tests: 8x8 images, a 4x4 latent of 3 channels, scales 1, 2, 4."""

from __future__ import annotations

import torch

from genmotion.image_core.flowar_config import FlowARConfig, FlowARImageConfig, KLAutoencoderConfig
from genmotion.image_core.flowar_model import FlowARImageModel

TINY_KL = KLAutoencoderConfig(latent_channels=3, latent_size=4, channels=8, channel_mult=(1, 2), norm_groups=4)
TINY_FLOWAR = FlowARConfig(
    depth=2, head_dim=8, num_classes=5, latent_channels=3, patch_nums=(1, 2, 4), z_width=16, flow_width=16, flow_depth=2
)
TINY = FlowARImageConfig(vae=TINY_KL, flowar=TINY_FLOWAR)
NAMES = ("red circle", "red square", "blue circle", "blue square", "green circle")


def tiny_model(seed: int = 0) -> FlowARImageModel:
    """A tiny model drawn from a private RNG stream (global state untouched): VAR's official init for the
    transformer, every head parameter random (the head's AdaLN-zero init would make it output 0), and latent
    statistics set."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FlowARImageModel(TINY)
    model.var.init_weights(init_head=1.0, generator=g)
    with torch.no_grad():
        for p in model.head.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        model.latent_mean.copy_(torch.tensor([0.1, -0.2, 0.3]))
        model.latent_std.copy_(torch.tensor([0.5, 1.0, 2.0]))
    return model.eval()
