"""The detector reads clips back: >= 99 % on clean renders, robust to blur and noise, and prompt adherence."""

from __future__ import annotations

import pytest
import torch

from genmotion.data.toyworld import (
    ClipSpec,
    ObjectSpec,
    caption,
    detect,
    render_clips,
    sample_clip_specs,
    score_adherence,
)
from genmotion.data.toyworld.bench import degrade_frames, detector_accuracy
from genmotion.errors import InputError, UsageError


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("size", [32, 64])
def test_reads_clean_renders_back(size):
    specs = sample_clip_specs(200, _g(size), num_objects=1)
    frames, _ = render_clips(specs, 16, size, size)
    accuracy = detector_accuracy(specs, frames)
    assert min(v for v in accuracy.values() if v is not None) >= 0.99, accuracy


def test_reads_blurred_noisy_frames():
    specs = sample_clip_specs(60, _g(1), num_objects=1)
    frames, _ = render_clips(specs, 16, 48, 48)
    accuracy = detector_accuracy(specs, degrade_frames(frames, _g(2)))  # blur + noise (std 20)
    assert min(v for v in accuracy.values() if v is not None) >= 0.97, accuracy


def test_any_window_of_a_long_clip_reads_its_motion():
    specs = [
        ClipSpec(objects=(ObjectSpec(shape=s, colour="orange", size="small", motion=m, speed=0.035, period=p),))
        for s, m, p in [
            ("circle", "left", 32.0),
            ("square", "down", 32.0),
            ("triangle", "bounce", 12.0),
            ("square", "grow", 30.0),
            ("circle", "shrink", 34.0),
        ]
    ]
    frames, _ = render_clips(specs, 256, 32, 32)
    for spec, clip in zip(specs, frames, strict=True):
        motions = {detect(clip[start : start + 16]).objects[0].motion for start in range(0, 241, 16)}
        assert motions == {spec.objects[0].motion}


def test_two_object_clips_score_their_captions():
    specs = sample_clip_specs(40, _g(3), num_objects=2)
    frames, _ = render_clips(specs, 16, 64, 64)
    g = _g(4)
    scores = [score_adherence(clip, caption(spec, g)) for spec, clip in zip(specs, frames, strict=True)]
    for name in ("colour", "count"):
        assert sum(s[name] for s in scores) >= 0.97 * len(scores)
    assert sum(s["all"] for s in scores) >= 0.75 * len(scores)  # occlusion hides some motions


def test_score_adherence_says_what_is_wrong():
    spec = ClipSpec(
        objects=(ObjectSpec(shape="square", colour="blue", size="large", motion="up", speed=0.05),),
        background="gradient sky",
    )
    frames, _ = render_clips([spec], 16, 64, 64)
    clip = frames[0]
    assert score_adherence(clip, "a big blue box rising under a sky") == {
        "colour": True,
        "shape": True,
        "size": True,
        "motion": True,
        "background": True,
        "all": True,
    }
    wrong = score_adherence(clip, "a small red ball moving left on a checkered floor")
    assert not any(wrong.values())
    assert score_adherence(clip.numpy(), "a blue triangle")["shape"] is False  # numpy frames work too
    with pytest.raises(UsageError):
        score_adherence(clip, "something else entirely")
    with pytest.raises(InputError):
        detect(clip.float())


def test_an_attribute_no_clip_shows_is_not_scored():
    specs = [ClipSpec(objects=(ObjectSpec(colour="red", shape="circle", size="large", motion="left", speed=0.02),))]
    frames, _ = render_clips(specs, 8, 32, 32)
    accuracy = detector_accuracy(specs, frames)
    assert accuracy["heading"] is None and accuracy["colour"] == 1.0
