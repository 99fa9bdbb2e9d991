"""The bench's per-plan scoring on the tiny rigger: every metric present and in range."""

import dataclasses

import numpy as np
import torch
from rigging_tiny import TINY

from genmotion.rigging.bench import evaluate_pipeline
from genmotion.rigging.model import RigAnything
from genmotion.rigging.pipeline import RigAnythingPipeline


def test_evaluate_pipeline_scores_a_plan():
    torch.manual_seed(0)
    pipe = RigAnythingPipeline(RigAnything(dataclasses.replace(TINY, max_joints=24)))
    out = evaluate_pipeline(pipe, ["snake"], meshes=1)
    m = out["snake"]
    for key in ("cd_j2j", "cd_j2b", "cd_b2b", "precision", "recall", "iou", "skin_l1", "deform_error", "seconds"):
        assert key in m and np.isfinite(m[key]) and m[key] >= 0
    assert 0 <= m["precision"] <= 1 and 0 <= m["skin_l1"] <= 2
