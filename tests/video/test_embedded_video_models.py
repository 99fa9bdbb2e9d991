"""The embedded video defaults load by name, stream frames, and stay within the shipped-weights budget."""

from pathlib import Path

import numpy as np
import pytest

import genmotion
from genmotion.registry import list_models

WEIGHTS = Path(genmotion.__file__).parent / "weights"


@pytest.mark.parametrize(("name", "kwargs"), [("videoar-toy", {}), ("ca2vdm-toy", {"num_steps": 4})])
def test_embedded_video_model_streams_frames(name, kwargs):
    assert name in {m.name for m in list_models()}
    pipe = genmotion.load(name)
    chunks = list(pipe.stream("a red ball moving left", num_frames=4, seed=0, **kwargs))
    frames = np.concatenate([c.frames for c in chunks])
    assert frames.shape == (4, 32, 32, 3) and frames.dtype == np.uint8 and frames.std() > 1  # not a blank video
    card = (WEIGHTS / name / "card.md").read_text()
    assert "## Evaluation" in card and "command" in card


def test_shipped_weights_fit_the_budget():
    total = sum(p.stat().st_size for p in WEIGHTS.rglob("*.safetensors"))
    assert total <= 60 * 2**20, f"embedded weights take {total / 2**20:.1f} MB (budget 60 MB)"
