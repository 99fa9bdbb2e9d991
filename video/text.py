"""The text condition both video generators standardise: per-dimension statistics of caption embeddings, and
the captions they are computed from; `TextConditioned`, the standardised, projected prompt condition with a
null row for guidance that VideoAR's transformers and its layout prior share.

Axes: N captions, B prompts, E text width, W model width.
"""

from __future__ import annotations

import torch
from torch import nn

from genmotion.video.config import VideoDataConfig

__all__ = ["TextConditioned", "statistics_captions", "text_statistics"]


def text_statistics(text_NE: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and spread (E,) of caption embeddings (N, E) that standardise a text condition; the
    spread is floored at half its median so near-constant dimensions stay tame."""
    std = text_NE.float().std(0)
    return text_NE.float().mean(0), std.clamp_min(0.5 * float(std.median()))


class TextConditioned(nn.Module):
    """A module conditioned on prompt embeddings (B, E) through a condition (B, W): standardised per dimension
    (`text_mean`, `text_std`, set from training captions and saved with the weights; MiniLM embeddings of
    captions are close to each other, so prompts are told apart early), projected by `text_proj`, with the
    learnt `null_text` row as the unconditional condition of classifier-free guidance. A subclass calls
    `_init_text_condition` in its `__init__` (its parameters' names and their creation order are its own)."""

    text_mean: torch.Tensor
    text_std: torch.Tensor

    def _init_text_condition(self, text_dim: int, width: int) -> None:
        self.register_buffer("text_mean", torch.zeros(text_dim))
        self.register_buffer("text_std", torch.ones(text_dim))
        self.text_proj = nn.Sequential(nn.Linear(text_dim, width), nn.SiLU(), nn.Linear(width, width))
        self.null_text = nn.Parameter(torch.randn(width) * 0.02)  # the unconditional condition (CFG)

    @torch.no_grad()
    def set_text_statistics(self, text_NE: torch.Tensor) -> None:
        """Standardise prompts with the per-dimension mean and spread of these caption embeddings (N, E)."""
        mean, std = text_statistics(text_NE)
        self.text_mean.copy_(mean)
        self.text_std.copy_(std)

    def condition(self, text_BE: torch.Tensor, keep_B: torch.Tensor | None = None) -> torch.Tensor:
        """Text embeddings (B, E) -> condition (B, W); rows where keep_B is False get the null condition."""
        cond = self.text_proj((text_BE - self.text_mean) / self.text_std)
        if keep_B is None:
            return cond
        return torch.where(keep_B[:, None], cond, self.null_text.to(cond.dtype).expand_as(cond))

    def null_condition(self, batch: int) -> torch.Tensor:
        """The unconditional condition (B, W)."""
        return self.null_text.unsqueeze(0).expand(batch, -1)


def statistics_captions(data_cfg: VideoDataConfig, count: int = 512) -> list[str]:
    """Captions whose embeddings standardise the text condition: the sidecar's, or toy-world training captions."""
    if data_cfg.source == "folder":
        from genmotion.video.data import read_sidecar

        assert data_cfg.folder is not None
        return [e.caption for e in read_sidecar(data_cfg.folder, data_cfg.captions)]
    from genmotion.data.toyworld import caption, sample_clip_specs

    g = torch.Generator().manual_seed(31337)
    specs = sample_clip_specs(count, g, two_object_probability=data_cfg.two_object_probability)
    return [caption(s, g, "train") for s in specs]
