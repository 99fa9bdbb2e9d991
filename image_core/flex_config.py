"""Configs of FlexVAR (Jiao et al., 2025): the flexible next-scale transformer and its tokenizer pair.

FlexVAR keeps VAR's transformer blocks and changes what a scale is: every scale is the whole image at its own
size (no residual), positions come from one 2-D map resized to each scale, and training draws a random
schedule of scale sizes every step. The architecture fields therefore name sizes, not a fixed schedule.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from genmotion.nn.vqvae_config import VQVAEConfig, check_patch_nums

__all__ = ["FlexVARConfig", "FlexVARImageConfig"]


@dataclass(frozen=True, kw_only=True)
class FlexVARConfig:
    """FlexVAR transformer: VAR's AdaLN blocks (width = head_dim * depth, heads = depth), no level embedding,
    one learnable position map of `position_size` x `position_size` area-resized to every scale."""

    depth: int = 16
    head_dim: int = 64
    num_classes: int = 1000  # the embedding holds one more row: the null class for guidance
    vocab_size: int = 8912  # V of the tokenizer (the official FlexVAE's)
    latent_channels: int = 32  # C of the tokenizer
    train_sizes: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)  # sides training draws
    default_sizes: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)  # the schedule used without --steps
    position_size: int = 32  # side of the 2-D position map (official pos_1LC (1, C, 32, 32))
    max_tokens: int = 680  # the most tokens a training schedule may hold
    mlp_ratio: float = 4.0
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    norm_eps: float = 1e-6
    attn_l2_norm: bool = True

    def __post_init__(self) -> None:
        check_patch_nums(self.train_sizes)
        check_patch_nums(self.default_sizes)
        if self.depth <= 0 or self.head_dim <= 0 or self.position_size <= 0:
            raise ValueError(f"depth, head_dim, position_size must be positive: {self.depth, self.head_dim}")
        if self.train_sizes[0] != 1 or self.default_sizes[0] != 1:
            raise ValueError("train_sizes and default_sizes must start at 1 (the class token's 1x1 scale)")
        if self.default_sizes[-1] != self.latent_size:
            raise ValueError(f"default_sizes must end at the full latent side {self.latent_size}")
        if self.max_tokens < self.latent_size**2 + 1:
            raise ValueError(f"max_tokens {self.max_tokens} cannot hold a 1x1 and a {self.latent_size}^2 scale")

    @property
    def width(self) -> int:
        return self.depth * self.head_dim

    @property
    def num_heads(self) -> int:
        return self.depth

    @property
    def latent_size(self) -> int:
        """The full latent side at training: every training schedule ends here."""
        return self.train_sizes[-1]


@dataclass(frozen=True, kw_only=True)
class FlexVARImageConfig:
    """A single-scale tokenizer and a FlexVAR transformer that work together: what a checkpoint holds."""

    vae: VQVAEConfig = dataclasses.field(default_factory=lambda: VQVAEConfig(patch_nums=(16,)))
    flexvar: FlexVARConfig = dataclasses.field(default_factory=FlexVARConfig)

    def __post_init__(self) -> None:
        v, f = self.vae, self.flexvar
        pairs = (
            ("vocab_size", v.vocab_size, f.vocab_size),
            ("latent_channels", v.latent_channels, f.latent_channels),
            ("latent side", v.patch_nums[-1], f.latent_size),
        )
        bad = [f"{name}: tokenizer {a} vs transformer {b}" for name, a, b in pairs if a != b]
        if bad:
            raise ValueError("tokenizer and transformer disagree on " + "; ".join(bad))
