"""2-D toy clips: specs, sampling, rendering, determinism, and how motion continues on long clips."""

from __future__ import annotations

import itertools

import pytest
import torch

from genmotion.data.toyworld import (
    ClipSpec,
    ObjectSpec,
    object_tracks,
    render_clips,
    sample_clip_spec,
    sample_clip_specs,
    sample_object_spec,
)
from genmotion.data.toyworld.vocab import BACKGROUND_COLOURS, PALETTE
from genmotion.errors import UsageError


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_same_seed_same_clips_and_different_seed_different_clips():
    a, b, c = (sample_clip_specs(8, _g(s)) for s in (0, 0, 1))
    assert a == b and a != c
    frames_a, masks_a = render_clips(a, 5, 32, 32)
    frames_b, masks_b = render_clips(b, 5, 32, 32)
    assert torch.equal(frames_a, frames_b) and torch.equal(masks_a, masks_b)


def test_shapes_dtypes_and_mask_ids():
    specs = sample_clip_specs(6, _g(2), num_objects=2) + sample_clip_specs(2, _g(3), num_objects=1)
    frames, masks = render_clips(specs, 4, 24, 40)
    assert frames.shape == (8, 4, 24, 40, 3) and frames.dtype == torch.uint8
    assert masks.shape == (8, 4, 24, 40) and masks.dtype == torch.uint8
    assert int(masks[:6].max()) == 2 and int(masks[6:].max()) == 1
    for spec, clip, mask in zip(specs, frames, masks, strict=True):  # object pixels carry the object's colour
        for k, obj in enumerate(spec.objects):
            inner = mask == k + 1
            if inner.any():
                assert (clip[inner].float().mean(0) - torch.tensor(PALETTE[obj.colour])).abs().max() < 40


def test_window_of_a_long_clip_equals_the_long_clip():
    specs = sample_clip_specs(3, _g(4))
    long, _ = render_clips(specs, 40, 32, 32)
    window, _ = render_clips(specs, 8, 32, 32, start_frame=30)
    assert torch.equal(long[:, 30:38], window)


def test_spec_dict_round_trip_and_validation():
    spec = sample_clip_spec(_g(5), num_objects=2)
    assert ClipSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(UsageError, match="unknown colour"):
        ObjectSpec(shape="circle", colour="pink", size="small", motion="left")  # type: ignore[arg-type]
    obj = ObjectSpec(shape="circle", colour="red", size="small", motion="left")
    with pytest.raises(UsageError, match="differ in colour"):
        ClipSpec(objects=(obj, obj))


def test_palette_is_far_from_backgrounds_and_itself():
    colours = torch.tensor(list(PALETTE.values()), dtype=torch.float32)
    steps = torch.linspace(0, 1, 33)[:, None]
    backgrounds = torch.cat(
        [
            torch.tensor(a, dtype=torch.float32) + steps * (torch.tensor(b, dtype=torch.float32) - torch.tensor(a))
            for a, b in BACKGROUND_COLOURS.values()
        ]
    )
    assert torch.cdist(colours, backgrounds).min() > 85
    pair = torch.cdist(colours, colours) + 1e3 * torch.eye(len(colours))
    assert pair.min() > 90


@pytest.mark.parametrize("motion", ["left", "right", "up", "down", "bounce"])
def test_motion_continues_on_long_clips(motion):
    """Every 16-frame window of a 256-frame clip moves the stated way (wrapping or hopping)."""
    spec = ClipSpec(
        objects=(
            ObjectSpec(
                shape="square", colour="red", size="small", motion=motion, speed=0.04, period=11.0, heading="left"
            ),
        )
    )
    tracks = object_tracks([spec], 256, 64, 64)
    x, y = tracks.centre_x[0, 0], tracks.centre_y[0, 0]
    dx = torch.remainder(x.diff() + 32, 64) - 32
    dy = torch.remainder(y.diff() + 32, 64) - 32
    for start in range(0, 240, 16):
        wx, wy = dx[start : start + 15], dy[start : start + 15]
        if motion == "bounce":  # drifts left, and goes both up and down in every window
            assert (wx < 0).all() and (wy < -0.5).sum() >= 2 and (wy > 0.5).sum() >= 2
        else:
            axis, sign = {"left": (wx, -1), "right": (wx, 1), "up": (wy, -1), "down": (wy, 1)}[motion]
            assert (axis * sign > 0).all()


@pytest.mark.parametrize("motion", ["still", "bounce", "grow", "shrink"])
def test_objects_that_do_not_wrap_stay_inside_the_frame(motion):
    """Only left/right/up/down (and a bounce's horizontal drift) wrap around the edges."""
    for size, seed in itertools.product(("small", "large"), range(4)):
        spec = ClipSpec(objects=(sample_object_spec(_g(seed), size=size, motion=motion),))  # type: ignore[arg-type]
        tracks = object_tracks([spec], 128, 64, 64)
        x, y, half = tracks.centre_x[0, 0], tracks.centre_y[0, 0], tracks.half[0, 0]
        assert (y - half >= -0.5).all() and (y + half <= 64.5).all()
        if motion != "bounce":
            assert (x - half >= -0.5).all() and (x + half <= 64.5).all()


def test_growth_cycles():
    spec = ClipSpec(objects=(ObjectSpec(shape="circle", colour="blue", size="large", motion="grow", period=32.0),))
    half = object_tracks([spec], 64, 64, 64).half[0, 0]
    steps = half.diff()
    assert (steps > 0).sum() == 62 and (steps < 0).sum() == 1  # grows, restarting at frame 32


def test_bad_sizes_are_usage_errors():
    with pytest.raises(UsageError):
        render_clips([], 4, 32, 32)
    with pytest.raises(UsageError):
        render_clips(sample_clip_specs(1, _g(0)), 0, 32, 32)
