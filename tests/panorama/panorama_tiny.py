"""A tiny seeded CubeComposer pipeline and input video for the panorama tests."""

from __future__ import annotations

import numpy as np
import torch

from genmotion.panorama.config import CubeComposerConfig
from genmotion.panorama.model import CubeComposerModel
from genmotion.panorama.pipeline import CubeComposerPipeline

TINY = CubeComposerConfig(face_size=8, patch=4, pad_cells=1, window=2, width=32, depth=2, heads=2, rope_axes=(4, 6, 6))


def tiny_pipeline(seed: int = 0) -> CubeComposerPipeline:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CubeComposerModel(TINY)
        for p in model.parameters():  # the zero-initialised output layers would make every output equal
            p.data.add_(0.05 * torch.randn_like(p))
    return CubeComposerPipeline(model, fps=8.0, input_size=(12, 16))


def tiny_video(frames: int = 5, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    return g.integers(0, 256, (frames, 12, 16, 3), dtype=np.uint8)
