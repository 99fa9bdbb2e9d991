"""The KL autoencoder of FlowAR's continuous latents: the VAR tokenizer's encoder and decoder
(`genmotion.nn.vqvae_nets`) with a diagonal Gaussian posterior in place of the vector quantiser (the
LDM/MAR "KL" autoencoder).

Axis legend: B batch, C latent channels, h/w latent size, H/W image size. Images are (B, 3, H, W) in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genmotion.errors import InputError
from genmotion.image_core.flowar_config import KLAutoencoderConfig
from genmotion.nn.vqvae_nets import Decoder, Encoder

__all__ = ["GaussianPosterior", "KLAutoencoder"]


@dataclass(frozen=True)
class GaussianPosterior:
    """q(z | image): mean and log-variance, each (B, C, h, w)."""

    mean: torch.Tensor
    logvar: torch.Tensor

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + (0.5 * self.logvar).exp() * noise

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) averaged over every element (a scalar)."""
        return 0.5 * (self.mean.square() + self.logvar.exp() - 1.0 - self.logvar).mean()


class KLAutoencoder(nn.Module):
    """encoder -> quant_conv (mean, logvar) -> sample -> post_quant_conv -> decoder."""

    def __init__(self, config: KLAutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        C = config.latent_channels
        self.encoder = Encoder(config.nets(2 * C))
        self.decoder = Decoder(config.nets())
        self.quant_conv = nn.Conv2d(2 * C, 2 * C, kernel_size=1)
        self.post_quant_conv = nn.Conv2d(C, C, kernel_size=1)

    def posterior(self, image_B3HW: torch.Tensor) -> GaussianPosterior:
        """(B, 3, H, W) -> q(z | image) over (B, C, H/f, W/f); log-variance clamped to [-30, 20]."""
        self._check_image(image_B3HW)
        mean, logvar = self.quant_conv(self.encoder(image_B3HW)).chunk(2, dim=1)
        return GaussianPosterior(mean, logvar.clamp(-30.0, 20.0))

    @torch.no_grad()
    def encode(self, image_B3HW: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> the posterior mean (B, C, h, w): the latent FlowAR models."""
        return self.posterior(image_B3HW).mean

    def decode(self, z_BChw: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> image (B, 3, H, W) clamped to [-1, 1]."""
        return self.decoder(self.post_quant_conv(z_BChw)).clamp(-1, 1)

    def forward(
        self, image_B3HW: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, GaussianPosterior]:
        """Training: (reconstruction (B, 3, H, W) unclamped, posterior) through a posterior sample."""
        q = self.posterior(image_B3HW)
        return self.decoder(self.post_quant_conv(q.sample(generator))), q

    @torch.no_grad()
    def reconstruct(self, image_B3HW: torch.Tensor) -> torch.Tensor:
        """Encode (posterior mean) then decode: (B, 3, H, W) -> (B, 3, H, W) in [-1, 1]."""
        return self.decode(self.encode(image_B3HW))

    def _check_image(self, image_B3HW: torch.Tensor) -> None:
        size = self.config.image_size
        if image_B3HW.ndim != 4 or tuple(image_B3HW.shape[-2:]) != (size, size):
            raise InputError(
                f"image of shape {tuple(image_B3HW.shape)} does not fit this autoencoder",
                why=f"it needs (B, 3, {size}, {size}): latent {self.config.latent_size} x downsampling "
                f"{self.config.downsample}",
                fix=f"resize or crop the image to {size}x{size}",
            )
