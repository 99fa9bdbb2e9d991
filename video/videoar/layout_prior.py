"""The layout prior: frame 0's coarsest scales drawn one token at a time, jointly, from the text.

Next-scale prediction draws the tokens of a scale independently given the coarser scales. At the finest
scales that is cheap and mostly right: each token refines its own small area. At the coarsest scales it is
where a frame's layout is decided (where the object sits, how large it is, what the background is) and the
few tokens there depend strongly on each other: four quadrant codes of a 2x2 scale drawn independently
mix layouts (an object in two quadrants, two backgrounds), and every finer scale inherits the mix. On the
toy world, forcing only frame 0's 1x1 and 2x2 codes to a ground-truth frame's and letting the transformer
draw everything else takes the clip FVD most of the way to a ground-truth frame 0 (model card).

`LayoutPrior` is a small causal transformer over the first `scales` scales' codes in raster order,
coarse to fine (1 + 4 = 5 tokens for scales (1, 2)), conditioned on the prompt by AdaLN, trained with
condition dropout for classifier-free guidance. Sampling draws its codes token by token; the frame's
transformer (the keyframe's, where the model has one) then draws the finer scales given those codes.
Axes: B frames, L layout tokens, W width, V vocabulary, E text embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from genmotion.nn.tiny import TinyTransformer, TinyTransformerConfig
from genmotion.sampling.guidance import guide
from genmotion.sampling.logits import sample_logits
from genmotion.video.text import TextConditioned

__all__ = ["LayoutPrior", "LayoutPriorConfig", "layout_loss"]


@dataclass(frozen=True, kw_only=True)
class LayoutPriorConfig:
    """`scales`: how many of the tokenizer's coarsest scales the prior draws (the rest stay the frame
    transformer's). The rest is the architecture."""

    scales: int = 2
    width: int = 128
    depth: int = 3
    heads: int = 4
    mlp_ratio: float = 4.0
    text_dim: int = 384

    def __post_init__(self) -> None:
        if self.scales < 1:
            raise ValueError(f"layout.scales must be >= 1 (the 1x1 scale at least), got {self.scales}")
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise ValueError(f"layout.width {self.width} must split into {self.heads} heads of even size")


class LayoutPrior(TextConditioned):
    """Causal transformer over the codes of the first `cfg.scales` scales of `patch_nums`; its prompt
    condition is `TextConditioned`'s."""

    def __init__(self, cfg: LayoutPriorConfig, vocab_size: int, patch_nums: tuple[int, ...]) -> None:
        super().__init__()
        if cfg.scales >= len(patch_nums):
            raise ValueError(
                f"layout.scales {cfg.scales} must leave at least one of the tokenizer's {len(patch_nums)} scales "
                "to the frame transformer"
            )
        W = cfg.width
        self.config, self.vocab_size = cfg, vocab_size
        self.sizes = tuple(p * p for p in patch_nums[: cfg.scales])  # tokens per drawn scale
        self.length = sum(self.sizes)
        self._init_text_condition(cfg.text_dim, W)
        self.start = nn.Parameter(torch.randn(W) * 0.02)
        self.embed = nn.Embedding(vocab_size, W)
        self.pos_embed = nn.Parameter(torch.randn(self.length, W) * 0.02)
        self.backbone = TinyTransformer(
            TinyTransformerConfig(dim=W, depth=cfg.depth, heads=cfg.heads, mlp_ratio=cfg.mlp_ratio, cond_dim=W)
        )
        self.head = nn.Linear(W, vocab_size)

    def forward(self, cond_BW: torch.Tensor, codes_BL: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, l + 1, V) of codes (B, l), l < L: position i predicts code i from the
        condition and codes < i (the start vector stands before the first)."""
        B, n = codes_BL.shape
        x = torch.cat([self.start.expand(B, 1, -1).to(cond_BW.dtype), self.embed(codes_BL)], dim=1)
        x = x + self.pos_embed[: n + 1].to(x.dtype)
        positions = torch.arange(n + 1, device=x.device)
        return self.head(self.backbone(x, positions, cond=cond_BW))

    def split(self, codes_BL: torch.Tensor) -> list[torch.Tensor]:
        """(B, L) raster codes -> per scale (B, p^2), coarse to fine."""
        return list(codes_BL.split(self.sizes, dim=1))

    @torch.no_grad()
    def sample(
        self,
        text_BE: torch.Tensor,
        *,
        guidance_scale: float = 1.0,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> list[torch.Tensor]:
        """Draw the layout codes of B frames token by token -> per scale (B, p^2). Guidance: logits =
        uncond + s (cond - uncond), the unconditional rows stacked below. L is a handful of tokens, so every
        step re-runs the whole prefix (no cache)."""
        B = text_BE.shape[0]
        cond = self.condition(text_BE)
        guided = guidance_scale != 1.0
        rows = torch.cat([cond, self.null_condition(B).to(cond.dtype)]) if guided else cond
        codes = torch.zeros(B, 0, dtype=torch.long, device=text_BE.device)
        for _ in range(self.length):
            logits = self(rows, torch.cat([codes, codes]) if guided else codes)[:, -1:].float()  # (rows, 1, V)
            if guided:
                cond_logits, uncond_logits = logits.chunk(2)
                logits = guide(cond_logits, uncond_logits, guidance_scale)
            nxt = sample_logits(logits, generator, temperature=temperature)  # (B, 1)
            codes = torch.cat([codes, nxt], dim=1)
        return self.split(codes)


def layout_loss(
    prior: LayoutPrior,
    codes: list[torch.Tensor],
    text_BE: torch.Tensor,
    condition_dropout: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean cross-entropy of the layout codes (per scale (B, p^2), the first `prior.config.scales` scales of
    frames' ground-truth coding) given the text; the text dropped to the null condition with probability
    `condition_dropout` (what guidance needs)."""
    target = torch.cat(codes[: prior.config.scales], dim=1)  # (B, L)
    keep = torch.rand(target.shape[0], generator=generator) >= condition_dropout
    cond = prior.condition(text_BE, keep.to(text_BE.device))
    logits = prior(cond, target[:, :-1])  # (B, L, V)
    loss = F.cross_entropy(logits.float().flatten(0, 1), target.flatten())
    accuracy = (logits.argmax(-1) == target).float().mean()
    return loss, {"layout_loss": float(loss.detach()), "layout_accuracy": float(accuracy)}
