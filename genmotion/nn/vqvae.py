"""The multi-scale VQ tokenizer of VAR, shared by the image generator (image_core) and VideoAR (per frame):
encoder -> quant_conv -> multi-scale residual VQ -> post_quant_conv -> decoder.

Follows VAR (Tian et al., 2024); attribute names match the official `VQVAE` so its state dicts
(`vae_ch160v4096z32.pth`) load key for key.

Axis legend: B batch, C = Cvae latent channels, H/W image or latent size, l tokens of one scale.
Images are (B, 3, H, W) in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from genmotion.errors import InputError
from genmotion.nn.quantizer import MultiScaleQuantizer
from genmotion.nn.vqvae_config import VQVAEConfig
from genmotion.nn.vqvae_nets import Decoder, Encoder

__all__ = ["VQVAE"]


class VQVAE(nn.Module):
    """Multi-scale VQ tokenizer. `encode` gives per-scale token indices; `decode_indices` goes back to pixels."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quantize = MultiScaleQuantizer(config)
        k = config.quant_conv_kernel
        c, z = config.latent_channels, config.bottleneck
        self.quant_conv = nn.Conv2d(z, c, kernel_size=k, stride=1, padding=k // 2)
        self.post_quant_conv = nn.Conv2d(c, z, kernel_size=k, stride=1, padding=k // 2)

    @property
    def patch_nums(self) -> tuple[int, ...]:
        return self.quantize.patch_nums

    def image_to_latent(self, image_B3HW: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> continuous latent f (B, C, H/16, W/16) before quantisation."""
        return self.quant_conv(self.encoder(image_B3HW))

    @torch.no_grad()
    def encode(self, image_B3HW: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) in [-1, 1] -> per-scale token indices, each (B, pn*pn), coarse to fine."""
        self._check_image(image_B3HW)
        return self.quantize.f_to_indices(self.image_to_latent(image_B3HW))

    def fhat_to_image(self, f_hat_BCHW: torch.Tensor) -> torch.Tensor:
        """Quantised latent f_hat -> image (B, 3, H, W) clamped to [-1, 1]."""
        return self.decoder(self.post_quant_conv(f_hat_BCHW)).clamp(-1, 1)

    def indices_to_fhat(self, indices_Bl: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-scale indices -> f_hat (B, C, H, W) at the finest latent size."""
        return self.quantize.indices_to_fhat(indices_Bl)

    def decode_indices(self, indices_Bl: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-scale indices -> image (B, 3, H, W) in [-1, 1]."""
        return self.fhat_to_image(self.indices_to_fhat(indices_Bl))

    @torch.no_grad()
    def reconstruct(self, image_B3HW: torch.Tensor) -> torch.Tensor:
        """Encode then decode through all scales: (B, 3, H, W) -> (B, 3, H, W) in [-1, 1]."""
        self._check_image(image_B3HW)
        f_hat = self.quantize.f_to_fhats(self.image_to_latent(image_B3HW))[-1]
        return self.fhat_to_image(f_hat)

    def forward(self, image_B3HW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenizer training: (reconstruction (B, 3, H, W), VQ loss scalar); gradients reach the encoder."""
        f_hat, vq_loss = self.quantize(self.image_to_latent(image_B3HW))
        return self.decoder(self.post_quant_conv(f_hat)), vq_loss

    def _check_image(self, image_B3HW: torch.Tensor) -> None:
        size = self.config.image_size
        if image_B3HW.ndim != 4 or tuple(image_B3HW.shape[-2:]) != (size, size):
            raise InputError(
                f"image of shape {tuple(image_B3HW.shape)} does not fit this tokenizer",
                why=f"it needs (B, 3, {size}, {size}): finest scale {self.patch_nums[-1]} x downsampling "
                f"{self.config.downsample}",
                fix=f"resize or crop the image to {size}x{size}",
            )
