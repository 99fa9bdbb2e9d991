"""Tiny configs shared by the image_core tests: 8x8 images, 4 scales, 2 blocks of width 16."""

from __future__ import annotations

import torch

from genmotion.image_core.config import VARConfig, VARImageConfig
from genmotion.nn.vqvae_config import VQVAEConfig

PATCH_NUMS = (1, 2, 3, 4)
TINY_VAE = VQVAEConfig(
    vocab_size=32,
    latent_channels=4,
    channels=8,
    channel_mult=(1, 2),
    num_res_blocks=1,
    norm_groups=4,
    patch_nums=PATCH_NUMS,
)
TINY_VAR = VARConfig(depth=2, head_dim=8, num_classes=5, vocab_size=32, latent_channels=4, patch_nums=PATCH_NUMS)
TINY = VARImageConfig(vae=TINY_VAE, var=TINY_VAR)


def seeded(build, *args, seed: int = 0):
    """Build a module with its default init drawn from a private RNG stream (global state untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build(*args).eval()
