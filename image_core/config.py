"""Architecture configs of the VAR family: the next-scale transformer, and the tokenizer + transformer pair.

The tokenizer's own config, `VQVAEConfig`, is shared with VideoAR and lives in `genmotion.nn.vqvae_config`.

Follows VAR (Tian et al., 2024) and its official code. Field names are full words; the official
argument each maps to is given in the field comment, so a reader of either code base finds the other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from genmotion.nn.vqvae_config import PATCH_NUMS_256, PATCH_NUMS_512, VQVAEConfig, check_patch_nums

__all__ = [
    "VARConfig",
    "VARImageConfig",
    "VARSamplingConfig",
    "official_var_config",
    "official_vqvae_config",
    "scale_slices",
]


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
    # Scale-Markov variants (HMAR, MVAR): each scale attends only within itself; its input already carries the
    # coarser scales through f_hat, so sampling keeps no KV cache. Off (False, 0, 0) is VAR.
    markov: bool = False
    neighbourhood_kernel: int = 0  # MVAR: spatial-Markov window (odd; 7 in MVAR) inside a scale; 0 = dense
    neighbourhood_from: int = 0  # first scale index with the window (MVAR's refine_step)
    mask_depth: int = 0  # HMAR: blocks of the masked-refinement branch (a copy of the last ones); 0 = none

    def __post_init__(self) -> None:
        check_patch_nums(self.patch_nums)
        if self.depth <= 0 or self.head_dim <= 0:
            raise ValueError(f"depth and head_dim must be positive, got {self.depth}, {self.head_dim}")
        uses_markov = self.neighbourhood_kernel or self.mask_depth
        if uses_markov and not self.markov:
            raise ValueError("neighbourhood_kernel and mask_depth need markov: true (they act within one scale)")
        if self.neighbourhood_kernel < 0 or (self.neighbourhood_kernel and self.neighbourhood_kernel % 2 == 0):
            raise ValueError(f"neighbourhood_kernel must be 0 or odd and positive, got {self.neighbourhood_kernel}")
        if not 0 <= self.neighbourhood_from < len(self.patch_nums):
            raise ValueError(f"neighbourhood_from must be a scale index below {len(self.patch_nums)}")
        if not 0 <= self.mask_depth <= self.depth:
            raise ValueError(f"mask_depth must be in [0, depth={self.depth}], got {self.mask_depth}")

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

    def neighbourhood(self, scale_index: int) -> int:
        """The spatial-Markov kernel of scale `scale_index`, 0 where its tokens attend densely."""
        return self.neighbourhood_kernel if scale_index >= self.neighbourhood_from else 0

    @property
    def scale_slices(self) -> tuple[tuple[int, int], ...]:
        """(begin, end) of each scale in the flattened token sequence (official `begin_ends`)."""
        return scale_slices(self.patch_nums)


def scale_slices(patch_nums: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """(begin, end) of each pn x pn scale in the sequence of all scales, coarse to fine."""
    out, cur = [], 0
    for p in patch_nums:
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
    refine: tuple[int, ...] = ()  # HMAR: sampling passes per scale (1 = one-shot); () = none

    def __post_init__(self) -> None:
        if any(steps < 1 for steps in self.refine):
            raise ValueError(f"refine counts must be >= 1 (1 = one pass), got {list(self.refine)}")
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
