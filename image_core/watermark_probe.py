"""What an LBW detector can read back from a VAR image, beyond re-tokenising it with the encoder: the tokens of
the exact sampled latent (the ceiling of any detector that recovers the latent, such as a better encoder) and
decoder inversion (a latent fitted by Adam until the frozen decoder reproduces the image, then quantised).

Axes: B batch, C latent channels, H/W image or latent size, l tokens of one scale, V vocabulary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["INVERSION_STEPS", "exact_latent_read", "invert_decoder", "inversion_read", "kept_rates"]

INVERSION_STEPS = 40
INVERSION_LR = 0.01  # latent units per Adam step; var-toy's latents are O(0.5)


def kept_rates(sampled: Sequence[torch.Tensor], read: Sequence[torch.Tensor], groups_V: torch.Tensor,
               ) -> dict[str, list[float]]:  # fmt: skip
    """Per scale, the share of sampled codes (each (B, l)), and of their code groups (`groups_V` (V,)), that a
    read-back `read` gives again."""
    pairs = [(s.to(groups_V.device), r.to(groups_V.device)) for s, r in zip(sampled, read, strict=True)]
    return {
        "codes": [round(float((s == r).float().mean()), 3) for s, r in pairs],
        "groups": [round(float((groups_V[s] == groups_V[r]).float().mean()), 3) for s, r in pairs],
    }


@torch.no_grad()
def exact_latent_read(vae: Any, tokens: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Re-quantise the exact latent f_hat of `tokens` (per scale (B, l)) as the detector would an encoded image:
    no pixels, no encoder. What any detector that gets the latent back could at best read."""
    return vae.quantize.f_to_indices(vae.indices_to_fhat(list(tokens)))


def invert_decoder(vae: Any, images_B3HW: torch.Tensor, steps: int = INVERSION_STEPS, lr: float = INVERSION_LR,
                   ) -> tuple[torch.Tensor, float]:  # fmt: skip
    """Latent (B, C, h, w) whose decoding reproduces `images_B3HW` (in [-1, 1]): starts at the encoder's latent,
    `steps` Adam steps on the pixel MSE through the frozen decoder (only the latent gets gradients). Returns the
    latent and the PSNR (dB, over the batch) of its decoding."""
    with torch.no_grad():
        start = vae.image_to_latent(images_B3HW)
    latent = start.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([latent], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            loss = (vae.fhat_to_image(latent) - images_B3HW).square().mean()
            (latent.grad,) = torch.autograd.grad(loss, [latent])
            optimiser.step()
    with torch.no_grad():
        mse = float((vae.fhat_to_image(latent) - images_B3HW).square().mean())
    return latent.detach(), 10 * math.log10(4.0 / max(mse, 1e-12))  # peak-to-peak 2 in [-1, 1]


def inversion_read(vae: Any, images_B3HW: torch.Tensor, steps: int = INVERSION_STEPS,
                   ) -> tuple[list[torch.Tensor], dict[str, float]]:  # fmt: skip
    """Per-scale indices (B, l) of the inverted latents, with the seconds per image and the decoding's PSNR."""
    start = time.perf_counter()
    latent, psnr = invert_decoder(vae, images_B3HW, steps)
    indices = vae.quantize.f_to_indices(latent)
    seconds = (time.perf_counter() - start) / max(1, images_B3HW.shape[0])
    return indices, {"seconds_per_image": seconds, "psnr_db": psnr}
