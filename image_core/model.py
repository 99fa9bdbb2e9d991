"""The VAR image model as one unit: tokenizer (`vae`) + next-scale transformer (`var`).

This is what a checkpoint directory holds (`config.yaml` + `model.safetensors` with `vae.*` and
`var.*` keys), mirroring the official training checkpoint's `vae_local` / `var_wo_ddp` pair.
"""

from __future__ import annotations

from torch import nn

from genmotion.image_core.config import VARImageConfig
from genmotion.image_core.var_model import VAR
from genmotion.nn.vqvae import VQVAE

__all__ = ["VARImageModel"]


class VARImageModel(nn.Module):
    """Holds `vae` (VQVAE) and `var` (VAR) built from one `VARImageConfig`; no forward of its own."""

    def __init__(self, config: VARImageConfig) -> None:
        super().__init__()
        self.config = config
        self.vae = VQVAE(config.vae)
        self.var = VAR(config.var)
