"""Architecture configs of the VAR family: the multi-scale VQ tokenizer and the next-scale transformer.

Follows VAR (Tian et al., 2024) and its official code. Field names are full words; the official
argument each maps to is given in the field comment, so a reader of either code base finds the other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = [
    "PATCH_NUMS_256",
    "PATCH_NUMS_512",
    "PATCH_NUMS_1024",
    "VARConfig",
    "VARImageConfig",
    "VARSamplingConfig",
    "VQVAEConfig",
    "official_var_config",
    "official_vqvae_config",
]

# The official scale schedules, keyed by image size at 16x downsampling (VAR's `--pn`).
PATCH_NUMS_256: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
PATCH_NUMS_512: tuple[int, ...] = (1, 2, 3, 4, 6, 9, 13, 18, 24, 32)
PATCH_NUMS_1024: tuple[int, ...] = (1, 2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 48, 64)


def _check_patch_nums(patch_nums: tuple[int, ...]) -> None:
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
    quant_resi: float = 0.5  # phi(x) = (1 - r) x + r conv3x3(x)
    share_quant_resi: int = 4  # 0: one phi per scale, 1: one phi for all, n: n shared phis
    using_znorm: bool = False  # cosine instead of L2 nearest code
    beta: float = 0.25  # commitment loss weight (tokenizer training only)
    patch_nums: tuple[int, ...] = PATCH_NUMS_256  # v_patch_nums

    def __post_init__(self) -> None:
        _check_patch_nums(self.patch_nums)
        widths = {self.channels * m for m in self.channel_mult}
        if any(w % self.norm_groups for w in widths):
            raise ValueError(f"norm_groups={self.norm_groups} must divide every level width {sorted(widths)}")

    @property
    def downsample(self) -> int:
        """Pixels per latent cell along each side."""
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def image_size(self) -> int:
        """Image side the finest scale of `patch_nums` decodes to."""
        return self.patch_nums[-1] * self.downsample


@dataclass(frozen=True, kw_only=True)
class VARConfig:
    """Next-scale prediction transformer (official `VAR`): width = head_dim * depth, heads = depth."""

    depth: int = 16
    head_dim: int = 64  # official: always 64, so width = 64 * depth
    num_classes: int = 1000  # the embedding holds one more row: the null class for guidance
    vocab_size: int = 4096  # V of the tokenizer
    latent_channels: int = 32  # Cvae of the tokenizer
    patch_nums: tuple[int, ...] = PATCH_NUMS_256
    mlp_ratio: float = 4.0
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0  # official: 0.1 * depth / 24
    norm_eps: float = 1e-6
    shared_aln: bool = False  # one AdaLN projection for all blocks (VAR-d36-s)
    attn_l2_norm: bool = True  # q/k L2-normalised with a learned per-head scale

    def __post_init__(self) -> None:
        _check_patch_nums(self.patch_nums)
        if self.depth <= 0 or self.head_dim <= 0:
            raise ValueError(f"depth and head_dim must be positive, got {self.depth}, {self.head_dim}")

    @property
    def width(self) -> int:
        """Embedding width C (= D, the condition width)."""
        return self.depth * self.head_dim

    @property
    def num_heads(self) -> int:
        return self.depth

    @property
    def num_tokens(self) -> int:
        """L: tokens over all scales."""
        return sum(p * p for p in self.patch_nums)

    @property
    def first_tokens(self) -> int:
        """Tokens of the first scale (the start-of-sequence map)."""
        return self.patch_nums[0] ** 2

    @property
    def scale_slices(self) -> tuple[tuple[int, int], ...]:
        """(begin, end) of each scale in the flattened token sequence (official `begin_ends`)."""
        out, cur = [], 0
        for p in self.patch_nums:
            out.append((cur, cur + p * p))
            cur += p * p
        return tuple(out)


@dataclass(frozen=True, kw_only=True)
class VARImageConfig:
    """A tokenizer and a transformer that work together: what a checkpoint directory holds."""

    vae: VQVAEConfig = dataclasses.field(default_factory=VQVAEConfig)
    var: VARConfig = dataclasses.field(default_factory=VARConfig)

    def __post_init__(self) -> None:
        mismatches = [
            f"{name}: tokenizer {a} vs transformer {b}"
            for name, a, b in (
                ("vocab_size", self.vae.vocab_size, self.var.vocab_size),
                ("latent_channels", self.vae.latent_channels, self.var.latent_channels),
                ("patch_nums", self.vae.patch_nums, self.var.patch_nums),
            )
            if a != b
        ]
        if mismatches:
            raise ValueError("tokenizer and transformer disagree on " + "; ".join(mismatches))


@dataclass(frozen=True, kw_only=True)
class VARSamplingConfig:
    """Default sampling settings a checkpoint ships with (`sampling:` in its config.yaml); not architecture."""

    guidance_scale: float = 2.5  # 1 = off; ramped from 1 to s over the scales (VAR's official cfg 1.5 = 2.5 here)
    top_k: int = 900
    top_p: float = 0.96
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if not self.guidance_scale >= 0 or self.top_k < 0 or not 0.0 <= self.top_p <= 1.0 or self.temperature < 0:
            raise ValueError(
                f"bad sampling settings {self}: need guidance_scale >= 0, top_k >= 0, top_p in [0, 1], temperature >= 0"
            )


def official_vqvae_config(patch_nums: tuple[int, ...] = PATCH_NUMS_256) -> VQVAEConfig:
    """The published `vae_ch160v4096z32.pth` tokenizer, run at the given scale schedule."""
    return VQVAEConfig(patch_nums=tuple(patch_nums))


def official_var_config(depth: int) -> VARConfig:
    """The published `var_d{depth}.pth` transformers: d16/20/24/30 at 256 px, d36-s (shared AdaLN) at 512 px."""
    if depth == 36:
        return VARConfig(depth=36, patch_nums=PATCH_NUMS_512, shared_aln=True, drop_path_rate=0.1 * 36 / 24)
    return VARConfig(depth=depth, drop_path_rate=0.1 * depth / 24)
