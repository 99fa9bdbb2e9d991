"""The VFMF world model as one module: the frozen patch encoder with its feature statistics, the feature
latent (channel-wise VAE, or the PCA baseline of the same width), the space-time forecaster and the feature
decoders. Composition only: the sampling loop lives in sampler.py.

Axes: B images or samples, T frames, H x W pixels, h x w = grid x grid patch tokens, N = h w, F feature
channels, K latent channels.
"""

from __future__ import annotations

import torch
from torch import nn

from genmotion.world.config import VFMFConfig
from genmotion.world.decoders import DecodedFrames, FeatureDecoders
from genmotion.world.encoder import PatchEncoder
from genmotion.world.forecaster import SpaceTimeForecaster
from genmotion.world.latent import ChannelStats, FeatureVAE, PCALatent

__all__ = ["VFMFModel"]


class VFMFModel(nn.Module):
    """encoder -> standardised features -> latent (vae or pca) -> forecaster -> latent -> features -> decoders."""

    def __init__(self, config: VFMFConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = PatchEncoder(config.encoder)
        self.feature_stats = ChannelStats(config.encoder.feature_dim)
        self.vae = FeatureVAE(config.vae)
        self.pca = PCALatent(config.encoder.feature_dim, config.vae.latent_dim)
        self.forecaster = SpaceTimeForecaster(config.forecaster)
        self.decoders = FeatureDecoders(config.decoder)

    @property
    def grid(self) -> int:
        return self.config.encoder.grid

    @property
    def image_size(self) -> int:
        return self.config.encoder.image_size

    def features(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> standardised features (B, h, w, F)."""
        return self.feature_stats.normalise(self.encoder(images_B3HW))

    def to_latent(self, features_BhwF: torch.Tensor) -> torch.Tensor:
        """(B, h, w, F) -> standardised latent tokens (B, N, K) of the configured latent."""
        z = self.pca.encode(features_BhwF) if self.config.latent == "pca" else self.vae.encode(features_BhwF)
        return z.flatten(1, 2)

    def from_latent(self, latents_BNK: torch.Tensor) -> torch.Tensor:
        """(B, N, K) -> standardised features (B, h, w, F)."""
        z = latents_BNK.unflatten(1, (self.grid, self.grid))
        return self.pca.decode(z) if self.config.latent == "pca" else self.vae.decode(z)

    def encode_frames(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """Images -> latent tokens (B, N, K)."""
        return self.to_latent(self.features(images_B3HW))

    def decode_features(self, features_BhwF: torch.Tensor) -> DecodedFrames:
        return self.decoders(features_BhwF)
