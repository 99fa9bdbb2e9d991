"""The text condition both video generators standardise: per-dimension statistics of caption embeddings, and
the captions they are computed from.

Axes: N captions, E text width.
"""

from __future__ import annotations

import torch

from genmotion.video.config import VideoDataConfig

__all__ = ["statistics_captions", "text_statistics"]


def text_statistics(text_NE: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and spread (E,) of caption embeddings (N, E) that standardise a text condition; the
    spread is floored at half its median so near-constant dimensions stay tame."""
    std = text_NE.float().std(0)
    return text_NE.float().mean(0), std.clamp_min(0.5 * float(std.median()))


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
