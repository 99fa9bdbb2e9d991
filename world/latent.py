"""The compact feature latents of VFMF: a channel-wise VAE (per token, no spatial downsampling) and the
PCA baseline of the same width, both standardised per channel with stored statistics; and the stored
per-channel feature statistics themselves.

Axes: ... any leading axes (B, T, h, w), F feature channels, K latent channels.
"""

from __future__ import annotations

import torch
from torch import nn

from genmotion.world.config import LatentConfig

__all__ = ["ChannelStats", "FeatureVAE", "PCALatent", "fit_pca"]


class ChannelStats(nn.Module):
    """Per-channel mean and std buffers (C,): `normalise` x -> (x - mean) / std, `denormalise` back."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    def fit(self, x_NC: torch.Tensor) -> None:
        """Set the statistics from samples (N, C)."""
        self.mean.copy_(x_NC.mean(0))
        self.std.copy_(x_NC.std(0).clamp(min=1e-4))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std + self.mean


class _ResBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class FeatureVAE(nn.Module):
    """Per-token VAE over standardised features (..., F) <-> latents (..., K); `stats` standardise the latent
    means (set after training)."""

    def __init__(self, config: LatentConfig) -> None:
        super().__init__()
        c = self.config = config
        self.encoder = nn.Sequential(
            nn.Linear(c.feature_dim, c.hidden), *(_ResBlock(c.hidden) for _ in range(c.blocks)), nn.LayerNorm(c.hidden)
        )
        self.to_moments = nn.Linear(c.hidden, 2 * c.latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(c.latent_dim, c.hidden), *(_ResBlock(c.hidden) for _ in range(c.blocks)), nn.LayerNorm(c.hidden)
        )
        self.to_features = nn.Linear(c.hidden, c.feature_dim)
        self.stats = ChannelStats(c.latent_dim)

    def moments(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log-variance), each (..., K), of the raw (unstandardised) latent."""
        mean, logvar = self.to_moments(self.encoder(features)).chunk(2, dim=-1)
        return mean, logvar.clamp(-12.0, 6.0)

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        return self.to_features(self.decoder(z))

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Standardised latent means (..., K) (deterministic: the posterior mean)."""
        return self.stats.normalise(self.moments(features)[0])

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Standardised latents (..., K) -> standardised features (..., F)."""
        return self.decode_raw(self.stats.denormalise(latents))


class PCALatent(nn.Module):
    """Projection on the top-K principal components of the standardised features, standardised per
    component; decode is the transposed projection."""

    components: torch.Tensor
    centre: torch.Tensor

    def __init__(self, feature_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.register_buffer("components", torch.zeros(latent_dim, feature_dim))
        self.register_buffer("centre", torch.zeros(feature_dim))
        self.stats = ChannelStats(latent_dim)

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        return self.stats.normalise((features - self.centre) @ self.components.T)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.stats.denormalise(latents) @ self.components + self.centre


def fit_pca(pca: PCALatent, features_NF: torch.Tensor) -> float:
    """Fit `pca` to samples (N, F) in place; returns the fraction of variance its components keep."""
    x = features_NF.double()
    centre = x.mean(0)
    cov = (x - centre).T @ (x - centre) / max(1, x.shape[0] - 1)
    values, vectors = torch.linalg.eigh(cov)  # ascending
    k = pca.components.shape[0]
    top = vectors[:, -k:].flip(-1).T  # (K, F), largest first
    pca.components.copy_(top.float())
    pca.centre.copy_(centre.float())
    pca.stats.fit(((x - centre) @ top.T).float())
    return float(values[-k:].sum() / values.sum().clamp(min=1e-12))
