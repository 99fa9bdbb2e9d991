"""Tiny FlowAR configs shared by the FlowAR tests: 8x8 images, a 4x4 latent of 3 channels, scales 1, 2, 4; a
per-token flow head (TINY) or a scale head (TINY_SCALE)."""

from __future__ import annotations

import dataclasses

import torch

from genmotion.image_core.flowar_config import FlowARConfig, FlowARImageConfig, KLAutoencoderConfig
from genmotion.image_core.flowar_model import FlowARImageModel

TINY_KL = KLAutoencoderConfig(latent_channels=3, latent_size=4, channels=8, channel_mult=(1, 2), norm_groups=4)
TINY_FLOWAR = FlowARConfig(
    depth=2, head_dim=8, num_classes=5, latent_channels=3, patch_nums=(1, 2, 4), z_width=16, flow_width=16, flow_depth=2
)
TINY = FlowARImageConfig(vae=TINY_KL, flowar=TINY_FLOWAR)
TINY_SCALE = dataclasses.replace(TINY, flowar=dataclasses.replace(TINY_FLOWAR, flow_head="scale", flow_width=64))
NAMES = ("red circle", "red square", "blue circle", "blue square", "green circle")


def tiny_model(seed: int = 0, config: FlowARImageConfig = TINY) -> FlowARImageModel:
    """A tiny model drawn from a private RNG stream (global state untouched): VAR's official init for the
    transformer, every head parameter random (the head's AdaLN-zero init would make it output 0), and latent
    statistics set."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FlowARImageModel(config)
    model.var.init_weights(init_head=1.0, generator=g)
    with torch.no_grad():
        spread = 0.3 if config.flowar.flow_head == "token" else 0.1  # 0.3 saturates the scale head's attention
        for p in model.head.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * spread)
        model.latent_mean.copy_(torch.tensor([0.1, -0.2, 0.3]))
        model.latent_std.copy_(torch.tensor([0.5, 1.0, 2.0]))
    return model.eval()
