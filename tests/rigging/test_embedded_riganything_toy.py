"""The shipped riganything-toy keeps its outputs (a fixed-seed rig of a fixed creature, pinned) and its
structural promises: one root, parents before children, weights that sum to 1."""

import numpy as np

import genmotion
from genmotion.rigging.creatures import random_creature
from genmotion.rigging.geometry import capsule_mesh

GOLDEN = {"parents": [-1, 0, 0, 0, 1, 2], "joints": [-0.1324, 1.2986, 0.0184, -0.1223, 1.3632, 0.0196]}


def test_riganything_toy_golden():
    creature = random_creature("biped", np.random.default_rng(0))
    V, F = capsule_mesh(creature, sections=6)
    pipe = genmotion.load("riganything-toy")
    assert pipe.config.max_joints == 64 and pipe.config.num_points == 1024
    r = pipe.rig((V, F), seed=0, max_joints=6, sample_steps=8)
    assert r.parents.tolist() == GOLDEN["parents"]
    np.testing.assert_allclose(r.joints[:2].ravel(), GOLDEN["joints"], atol=2e-3)
    np.testing.assert_allclose(r.weights.sum(axis=1), 1.0, atol=1e-9)
