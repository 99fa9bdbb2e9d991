"""The embedded video defaults load by name, stream frames, and stay within the shipped-weights budget."""

import itertools
from pathlib import Path

import numpy as np
import pytest

import genmotion
from genmotion.data.toyworld import detect
from genmotion.registry import list_models

WEIGHTS = Path(genmotion.__file__).parent / "weights"


@pytest.mark.parametrize(("name", "kwargs"), [("videoar-toy", {}), ("ca2vdm-toy", {"num_steps": 4})])
def test_embedded_video_model_streams_frames(name, kwargs):
    assert name in {m.name for m in list_models()}
    pipe = genmotion.load(name)
    chunks = list(pipe.stream("a red ball moving left", num_frames=4, seed=0, **kwargs))
    frames = np.concatenate([c.frames for c in chunks])
    assert frames.shape == (4, 64, 64, 3) and frames.dtype == np.uint8 and frames.std() > 1  # not a blank video
    card = (WEIGHTS / name / "card.md").read_text()
    assert "## Evaluation" in card and "command" in card


@pytest.mark.parametrize(
    ("name", "kwargs", "seeds", "least"),
    [("videoar-toy", {}, (0, 1, 2), 8), ("ca2vdm-toy", {"num_steps": 10}, (0,), 2)],
)
def test_embedded_video_model_draws_the_prompted_colour(name, kwargs, seeds, least):
    """Fixed seeds, so deterministic: the detector reads the prompted colour in `least` of the 3 x len(seeds)
    clips (videoar-toy at its recommended sampling: all nine with the keyframe transformer, 2026-12-03; eight
    without it at guidance 2, one blue square read as cyan)."""
    pipe = genmotion.load(name)
    prompts = {"red": "a red ball moving left", "blue": "a blue square moving up", "green": "a green box moving right"}
    read = []
    for (colour, prompt), seed in itertools.product(prompts.items(), seeds):
        found = detect(pipe.generate(prompt, num_frames=8, seed=seed, **kwargs).frames).objects
        read.append(bool(found) and found[0].colour == colour)
    assert sum(read) >= least, f"{name} drew the prompted colour in {sum(read)} of {len(read)} clips"


def test_shipped_weights_fit_the_budget():
    total = sum(p.stat().st_size for p in WEIGHTS.rglob("*.safetensors"))
    assert total <= 60 * 2**20, f"embedded weights take {total / 2**20:.1f} MB (budget 60 MB)"
