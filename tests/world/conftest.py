"""Fixtures of the world tests: a tiny VFMF pipeline and its checkpoint directory."""

from __future__ import annotations

import pytest
from world_tiny import tiny_model

from genmotion.world.pipeline import VFMFPipeline


@pytest.fixture
def tiny_pipe() -> VFMFPipeline:
    return VFMFPipeline(tiny_model())


@pytest.fixture
def tiny_ckpt(tmp_path, tiny_pipe):
    return tiny_pipe.save_pretrained(tmp_path / "vfmf-tiny", card="# tiny\n")
