"""Configs of FlowAR (Ren et al., 2024): the KL autoencoder of its continuous latents, the next-scale transformer
with its flow head, the pair a checkpoint holds, and the default sampling settings.

FlowAR changes three things about VAR: latents are continuous (a KL autoencoder instead of the multi-scale VQ),
scales double (1, 2, 4, 8, ...) and each scale is the whole latent area-downsampled (not a residual), and a small
flow-matching head turns the transformer's output into latent vectors (no softmax): per token, or over the tokens
of a scale together as FlowAR's own head does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from genmotion.image_core.config import VARConfig
from genmotion.nn.vqvae_config import VQVAEConfig

__all__ = [
    "FLOWAR_KIND",
    "FLOWNET_HEAD_DIM",
    "FLOW_HEADS",
    "FlowARConfig",
    "FlowARImageConfig",
    "FlowARSamplingConfig",
    "KLAutoencoderConfig",
    "check_doubling",
]

FLOWAR_KIND = "flowar"
FLOW_HEADS = ("token", "scale")
FLOWNET_HEAD_DIM = 64  # FlowAR's flow head (`FlowNet`) splits its width into attention heads of this size


def check_doubling(patch_nums: tuple[int, ...]) -> None:
    """Raise ValueError unless `patch_nums` is 1, 2, 4, ... (each scale twice the side of the one before)."""
    if (
        not patch_nums
        or patch_nums[0] != 1
        or any(b != 2 * a for a, b in zip(patch_nums, patch_nums[1:], strict=False))
    ):
        raise ValueError(f"FlowAR scales double from 1 (1, 2, 4, 8, ...), got {patch_nums}")


@dataclass(frozen=True, kw_only=True)
class KLAutoencoderConfig:
    """The convolutional encoder/decoder of the VAR tokenizer with a Gaussian posterior instead of the VQ."""

    latent_channels: int = 4
    latent_size: int = 8  # side of the latent map; images are latent_size * downsample pixels
    channels: int = 16
    channel_mult: tuple[int, ...] = (1, 2, 2)  # downsampling = 2 ** (len - 1)
    num_res_blocks: int = 1
    norm_groups: int = 8
    dropout: float = 0.0
    using_sa: bool = False
    using_mid_sa: bool = True
    in_channels: int = 3

    def __post_init__(self) -> None:
        if self.latent_channels < 1 or self.latent_size < 1:
            raise ValueError(f"latent_channels, latent_size must be >= 1: {self.latent_channels}, {self.latent_size}")
        self.nets()  # the width/group checks of the shared encoder/decoder

    def nets(self, latent_channels: int | None = None) -> VQVAEConfig:
        """The config the shared `Encoder`/`Decoder` read (their VQ fields are unused here)."""
        return VQVAEConfig(
            latent_channels=latent_channels or self.latent_channels,
            channels=self.channels,
            channel_mult=self.channel_mult,
            num_res_blocks=self.num_res_blocks,
            norm_groups=self.norm_groups,
            dropout=self.dropout,
            using_sa=self.using_sa,
            using_mid_sa=self.using_mid_sa,
            in_channels=self.in_channels,
            patch_nums=(self.latent_size,),
        )

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def image_size(self) -> int:
        return self.latent_size * self.downsample


@dataclass(frozen=True, kw_only=True)
class FlowARConfig:
    """The next-scale transformer (VAR's blocks, width = head_dim * depth) and the per-token flow head."""

    depth: int = 4
    head_dim: int = 32
    num_classes: int = 12  # the class embedding holds one more row: the null class for guidance
    latent_channels: int = 4
    patch_nums: tuple[int, ...] = (1, 2, 4, 8)
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    attn_l2_norm: bool = True
    z_width: int = 128  # width of the transformer output z that conditions the flow head
    flow_width: int = 128  # width of the flow head
    flow_depth: int = 3  # blocks of the flow head
    # "token": an MLP of residual AdaLN blocks per token, the tokens of a scale drawn independently given z;
    # "scale": FlowAR's own head, a transformer over one scale's tokens (heads of 64, 2-D RoPE, AdaLN per token
    # from its z), so the tokens of a scale are denoised together; flow_width a multiple of FLOWNET_HEAD_DIM
    flow_head: str = "token"

    def __post_init__(self) -> None:
        check_doubling(self.patch_nums)
        if min(self.depth, self.head_dim, self.z_width, self.flow_width, self.flow_depth, self.latent_channels) < 1:
            raise ValueError(f"every width and depth must be >= 1, got {self}")
        if self.flow_head not in FLOW_HEADS:
            raise ValueError(f"flow_head must be one of {FLOW_HEADS}, got {self.flow_head!r}")
        if self.flow_head == "scale" and self.flow_width % FLOWNET_HEAD_DIM:
            raise ValueError(
                f"a scale flow head needs flow_width a multiple of {FLOWNET_HEAD_DIM} (its heads), "
                f"got {self.flow_width}"
            )

    def transformer(self) -> VARConfig:
        """The VAR transformer FlowAR runs: its "vocabulary" head is the projection to z (z_width wide)."""
        return VARConfig(
            depth=self.depth,
            head_dim=self.head_dim,
            num_classes=self.num_classes,
            vocab_size=self.z_width,
            latent_channels=self.latent_channels,
            patch_nums=self.patch_nums,
            mlp_ratio=self.mlp_ratio,
            norm_eps=self.norm_eps,
            attn_l2_norm=self.attn_l2_norm,
        )


@dataclass(frozen=True, kw_only=True)
class FlowARImageConfig:
    """An autoencoder and a transformer that work together: what a `flowar` checkpoint directory holds."""

    vae: KLAutoencoderConfig = dataclasses.field(default_factory=KLAutoencoderConfig)
    flowar: FlowARConfig = dataclasses.field(default_factory=FlowARConfig)

    def __post_init__(self) -> None:
        if self.vae.latent_channels != self.flowar.latent_channels:
            raise ValueError(
                f"autoencoder has {self.vae.latent_channels} latent channels, transformer {self.flowar.latent_channels}"
            )
        if self.vae.latent_size != self.flowar.patch_nums[-1]:
            raise ValueError(
                f"the last scale {self.flowar.patch_nums[-1]} must be the latent size {self.vae.latent_size}"
            )

    @property
    def var(self) -> VARConfig:
        """The transformer as a VAR config (what tools of the VAR family read: patch_nums, num_classes, ...)."""
        return self.flowar.transformer()


@dataclass(frozen=True, kw_only=True)
class FlowARSamplingConfig:
    """Default sampling settings of a checkpoint (`sampling:` in its config.yaml).

    guidance_scale: cfg, ramped over the scales as 1 + (cfg - 1) s / (S - 1); 1 = off.
    guidance_interval: guidance only at flow times t <= this (t = 1 is noise, 0 is data).
    num_steps: Euler steps of the flow head per scale.
    """

    guidance_scale: float = 3.0
    guidance_interval: float = 0.9
    num_steps: int = 10

    def __post_init__(self) -> None:
        if not self.guidance_scale >= 0 or not 0.0 <= self.guidance_interval <= 1.0 or self.num_steps < 1:
            raise ValueError(
                f"bad FlowAR sampling settings {self}: need guidance_scale >= 0, guidance_interval in [0, 1], "
                "num_steps >= 1"
            )
