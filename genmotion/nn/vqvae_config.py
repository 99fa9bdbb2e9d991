"""Config of the multi-scale residual VQ tokenizer shared by VAR (images) and VideoAR (per frame).

Follows VAR (Tian et al., 2024) and its official code. Field names are full words; the official argument each
maps to is given in the field comment, so a reader of either code base finds the other.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PATCH_NUMS_256", "PATCH_NUMS_512", "PATCH_NUMS_1024", "VQVAEConfig", "check_patch_nums"]

# The official scale schedules, keyed by image size at 16x downsampling (VAR's `--pn`).
PATCH_NUMS_256: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
PATCH_NUMS_512: tuple[int, ...] = (1, 2, 3, 4, 6, 9, 13, 18, 24, 32)
PATCH_NUMS_1024: tuple[int, ...] = (1, 2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 48, 64)


def check_patch_nums(patch_nums: tuple[int, ...]) -> None:
    """Raise ValueError unless `patch_nums` (a scale schedule, coarse to fine) are positive and strictly increasing."""
    if not patch_nums or any(p <= 0 for p in patch_nums):
        raise ValueError(f"patch_nums must be a non-empty tuple of positive ints, got {patch_nums}")
    if any(b <= a for a, b in zip(patch_nums, patch_nums[1:], strict=False)):
        raise ValueError(f"patch_nums must increase strictly (coarse to fine), got {patch_nums}")


@dataclass(frozen=True, kw_only=True)
class VQVAEConfig:
    """Multi-scale residual VQ tokenizer (official `VQVAE` + `VectorQuantizer2`)."""

    vocab_size: int = 4096  # V
    latent_channels: int = 32  # Cvae / z_channels
    channels: int = 160  # ch
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)  # ch_mult; downsampling = 2 ** (len - 1)
    num_res_blocks: int = 2  # encoder per level; the decoder uses one more
    norm_groups: int = 32  # GroupNorm groups (32 in the official model; smaller for tiny ones)
    dropout: float = 0.0
    using_sa: bool = True  # attention blocks at the lowest resolution
    using_mid_sa: bool = True  # attention block in the middle
    in_channels: int = 3
    quant_conv_kernel: int = 3  # quant_conv_ks
    # Width of the encoder output / decoder input around quant_conv and post_quant_conv; 0 = latent_channels
    # (VAR). LlamaGen-layout tokenizers (FlexVAR's FlexVAE: z_channels 256) widen it to more than the codes.
    bottleneck_channels: int = 0
    quant_resi: float = 0.5  # phi(x) = (1 - r) x + r conv3x3(x)
    share_quant_resi: int = 4  # 0: one phi per scale, 1: one phi for all, n: n shared phis
    using_znorm: bool = False  # cosine instead of L2 nearest code
    beta: float = 0.25  # commitment loss weight (tokenizer training only)
    patch_nums: tuple[int, ...] = PATCH_NUMS_256  # v_patch_nums
    # How the residual moves between scales: "spatial" = VAR's area-down / bicubic-up; "spectral" = the
    # next-frequency order, an ideal Fourier low-pass (genmotion.nn.resample). Not in the official code.
    resample: str = "spatial"

    def __post_init__(self) -> None:
        check_patch_nums(self.patch_nums)
        if self.resample not in ("spatial", "spectral"):
            raise ValueError(f"resample must be 'spatial' or 'spectral', got {self.resample!r}")
        if self.bottleneck_channels < 0:
            raise ValueError(f"bottleneck_channels must be >= 0 (0 = latent_channels), got {self.bottleneck_channels}")
        widths = {self.channels * m for m in self.channel_mult}
        if any(w % self.norm_groups for w in widths):
            raise ValueError(f"norm_groups={self.norm_groups} must divide every level width {sorted(widths)}")

    @property
    def bottleneck(self) -> int:
        """Channels of the encoder output and the decoder input (`bottleneck_channels`, else latent_channels)."""
        return self.bottleneck_channels or self.latent_channels

    @property
    def downsample(self) -> int:
        """Pixels per latent cell along each side."""
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def image_size(self) -> int:
        """Image side the finest scale of `patch_nums` decodes to."""
        return self.patch_nums[-1] * self.downsample
