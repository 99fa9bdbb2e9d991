"""The tiny rigger every rigging test uses: a seeded 2-layer model."""

from __future__ import annotations

import torch

from genmotion.rigging.config import RigModelConfig, RigSamplingConfig
from genmotion.rigging.model import RigAnything
from genmotion.rigging.pipeline import RigAnythingPipeline

TINY = RigModelConfig(
    num_points=256,
    shape_tokens=32,
    group_size=8,
    width=32,
    depth=2,
    heads=2,
    max_joints=8,
    head_width=32,
    head_depth=1,
    skin_width=16,
    fourier_bands=4,
)


def tiny_pipeline() -> RigAnythingPipeline:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = RigAnything(TINY)
    return RigAnythingPipeline(model, RigSamplingConfig(sample_steps=4))
