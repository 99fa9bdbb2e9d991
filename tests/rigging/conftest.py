"""Tiny rigger fixtures: a seeded 2-layer model saved as a checkpoint, and a small capsule creature mesh."""

from __future__ import annotations

import numpy as np
import pytest
from rigging_tiny import tiny_pipeline

from genmotion.rigging.creatures import random_creature
from genmotion.rigging.geometry import capsule_mesh


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("rig") / "tiny"
    tiny_pipeline().save_pretrained(path, card="# tiny test rigger\n")
    return path


@pytest.fixture(scope="session")
def creature_mesh():
    creature = random_creature("biped", np.random.default_rng(0))
    V, F = capsule_mesh(creature, sections=6)
    return creature, V, F


@pytest.fixture
def obj_file(tmp_path, creature_mesh):
    import trimesh

    _, V, F = creature_mesh
    path = tmp_path / "creature.obj"
    trimesh.Trimesh(V, F, process=False).export(path)
    return path
