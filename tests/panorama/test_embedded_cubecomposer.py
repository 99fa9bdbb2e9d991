"""The shipped `cubecomposer-toy`: loads by name, and its seeded output is pinned (golden slice)."""

from __future__ import annotations

import numpy as np
import torch

import genmotion
from genmotion.panorama.config import SampleConfig
from genmotion.panorama.data import Trajectory
from genmotion.panorama.pipeline import CubeComposerPipeline
from genmotion.panorama.sampler import CubeComposerSampler


def test_cubecomposer_toy_golden_slice() -> None:
    pipe = genmotion.load("cubecomposer-toy")
    assert isinstance(pipe, CubeComposerPipeline) and pipe.config.face_size == 16
    frames = np.random.default_rng(0).integers(0, 256, (4, 36, 48, 3), dtype=np.uint8)
    video = torch.as_tensor(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    cond, mask = pipe.condition(video, Trajectory.front(4, 90))
    sampler = CubeComposerSampler(pipe.model, SampleConfig(num_steps=4))
    cube = torch.cat([w.cube for w in sampler.stream(cond, mask, torch.Generator().manual_seed(0))])
    # pinned for the overlap-head weights (fine-tuned 240 steps) sampled with the two-sided seam blend
    back = torch.tensor([0.1484, 0.1506, -0.057, 0.1594, 0.1189, 0.1849])  # frame 3, face B, red, row 8
    up = torch.tensor([0.5544, 0.5967, 0.65, 0.61])  # frame 1, face U, blue, row 3: the sky
    torch.testing.assert_close(cube[3, 2, 0, 8, :6], back, atol=2e-4, rtol=0)
    torch.testing.assert_close(cube[1, 4, 2, 3, :4], up, atol=2e-4, rtol=0)
