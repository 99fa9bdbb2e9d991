"""The shipped `vfmf-toy` keeps its outputs: a fixed-seed forecast of a held-out scene, pinned (a change
means the weights or the sampler changed, which needs a new card and bench)."""

from __future__ import annotations

import numpy as np

import genmotion
from genmotion.registry import resolve
from genmotion.world.data import ClipSpec, render_clips


def test_vfmf_toy_golden_and_baselines_load():
    pipe = genmotion.load("vfmf-toy")
    clip = render_clips(ClipSpec(num_scenes=1, num_frames=4, seed=1000)).rgb[0]
    r = pipe.generate(clip, horizon=2, num_samples=2, seed=0)
    assert r.frames.shape == (2, 2, 64, 64, 3) and r.latents.shape == (2, 2, 64, 16)
    np.testing.assert_allclose(r.latents[1, 1, 0, :6], [0.9916, 0.599, 1.1693, -0.3157, 0.2968, -0.6016], atol=2e-3)
    assert abs(int(r.frames.astype(np.int64).sum()) - 7058660) < 2000
    root = resolve("vfmf-toy")
    for name, objective in (("regression", "regression"), ("vfmf-pca", "flow")):
        base = pipe.with_forecaster(root / "baselines" / name)
        assert base.model.config.forecaster.objective == objective
