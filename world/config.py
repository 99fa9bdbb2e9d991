"""Configs of the VFMF world model (frozen keyword-only dataclasses): the patch encoder (toy ViT or a
DINOv2-layout ViT-B/14 with registers), the channel-wise feature VAE, the feature decoders and the
space-time forecaster. Architecture only; sampling settings are call arguments."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "DINOV2_VITB14_REG",
    "DecoderConfig",
    "EncoderConfig",
    "ForecasterConfig",
    "LatentConfig",
    "VFMFConfig",
]


@dataclass(frozen=True, kw_only=True)
class EncoderConfig:
    """A ViT in DINOv2's parameter layout. `layers` are the block outputs concatenated into the features
    (each passed through the final norm); `pos_grid` is the side of the stored position table (37 for
    DINOv2 at 518 px, interpolated to the input grid)."""

    image_size: int = 64
    patch_size: int = 8
    width: int = 96
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    num_registers: int = 0
    layers: tuple[int, ...] = (0, 1, 2, 3)
    pos_grid: int = 8

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if not self.layers or any(not 0 <= i < self.depth for i in self.layers):
            raise ValueError(f"layers {self.layers} must index blocks 0..{self.depth - 1}")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def feature_dim(self) -> int:
        return self.width * len(self.layers)


# DINOv2 ViT-B/14 with 4 registers (`dinov2_vitb14_reg`), features from blocks [2, 5, 8, 11]: 3072 channels.
DINOV2_VITB14_REG = EncoderConfig(
    image_size=224, patch_size=14, width=768, depth=12, heads=12, num_registers=4, layers=(2, 5, 8, 11), pos_grid=37
)


@dataclass(frozen=True, kw_only=True)
class LatentConfig:
    """Channel-wise VAE over standardised features: per token, `feature_dim` -> `latent_dim`, no spatial
    downsampling. `kl_weight` multiplies the KL term of the training loss."""

    feature_dim: int = 384
    latent_dim: int = 16
    hidden: int = 256
    blocks: int = 2
    kl_weight: float = 1e-4


@dataclass(frozen=True, kw_only=True)
class DecoderConfig:
    """Feature -> pixel heads: segmentation classes, depth as `depth_bins` log-spaced bins in
    [depth_min, depth_max] (metres along the ray; farther, e.g. sky, is the last bin), normals, RGB."""

    feature_dim: int = 384
    patch_size: int = 8
    hidden: int = 128
    pixel_channels: int = 16
    num_classes: int = 4
    depth_bins: int = 32
    depth_min: float = 0.5
    depth_max: float = 40.0


@dataclass(frozen=True, kw_only=True)
class ForecasterConfig:
    """Space-time transformer over latent frames of `grid` x `grid` tokens: separable spatial and (causal)
    temporal attention per block, AdaLN on the flow time. `objective` flow = conditional flow matching of
    the next frame, regression = direct MSE prediction (the deterministic baseline)."""

    latent_dim: int = 16
    grid: int = 8
    width: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    max_context: int = 4
    objective: Literal["flow", "regression"] = "flow"

    def __post_init__(self) -> None:
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise ValueError(f"width {self.width} / heads {self.heads} must give an even head size")
        if self.max_context < 1:
            raise ValueError("max_context must be >= 1")


@dataclass(frozen=True, kw_only=True)
class VFMFConfig:
    """The whole world model: encoder -> features -> latent -> forecaster -> latent -> features -> decoders.
    `latent` vae = the VAE, pca = principal components of the same width."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    vae: LatentConfig = field(default_factory=LatentConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    forecaster: ForecasterConfig = field(default_factory=ForecasterConfig)
    latent: Literal["vae", "pca"] = "vae"
