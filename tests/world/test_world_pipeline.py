"""The VFMF pipeline on a tiny model: stream == generate, seeds, samples, round trip, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
from world_tiny import tiny_clip

from genmotion.errors import InputError, UsageError
from genmotion.world.pipeline import VFMFPipeline, WorldChunk


def test_stream_yields_each_future_frame_and_equals_generate(tiny_pipe):
    clip = tiny_clip(4)
    chunks = list(tiny_pipe.stream(clip, horizon=3, num_samples=2, seed=1, num_steps=2))
    assert [c.index for c in chunks] == [0, 1, 2] and all(isinstance(c, WorldChunk) for c in chunks)
    c = chunks[0]
    assert c.rgb.shape == (2, 16, 16, 3) and c.rgb.dtype == np.uint8
    assert c.segmentation.shape == (2, 16, 16) and c.depth.shape == (2, 16, 16) and c.normals.shape == (2, 16, 16, 3)
    result = tiny_pipe.generate(clip, horizon=3, num_samples=2, seed=1, num_steps=2)
    streamed = tiny_pipe.collect(chunks, 0.0)
    assert result.frames.shape == (2, 3, 16, 16, 3) and result.latents.shape == (2, 3, 4, 4)
    for name in ("frames", "segmentation", "depth", "normals", "latents"):
        np.testing.assert_array_equal(getattr(result, name), getattr(streamed, name))


def test_seed_fixes_the_draw_and_samples_differ(tiny_pipe):
    clip = tiny_clip(3)
    a = tiny_pipe.generate(clip, horizon=2, num_samples=2, seed=4, num_steps=2)
    b = tiny_pipe.generate(clip, horizon=2, num_samples=2, seed=4, num_steps=2)
    c = tiny_pipe.generate(clip, horizon=2, num_samples=2, seed=5, num_steps=2)
    np.testing.assert_array_equal(a.latents, b.latents)
    assert not np.array_equal(a.latents, c.latents)
    assert not np.array_equal(a.latents[0], a.latents[1])


def test_cache_on_and_off_agree(tiny_pipe):
    clip = tiny_clip(4)
    on = tiny_pipe.generate(clip, horizon=3, seed=0, num_steps=3, cache=True)
    off = tiny_pipe.generate(clip, horizon=3, seed=0, num_steps=3, cache=False)
    np.testing.assert_allclose(on.latents, off.latents, atol=1e-5)


def test_round_trip(tiny_pipe, tiny_ckpt):
    back = VFMFPipeline.from_pretrained(tiny_ckpt)
    clip = tiny_clip(3)
    a = tiny_pipe.generate(clip, horizon=2, seed=0, num_steps=2)
    b = back.generate(clip, horizon=2, seed=0, num_steps=2)
    # the checkpoint stores bf16 weights: equal to the bf16-rounded original
    assert a.frames.shape == b.frames.shape
    np.testing.assert_allclose(a.latents, b.latents, atol=0.15)
    again = VFMFPipeline.from_pretrained(tiny_ckpt).generate(clip, horizon=2, seed=0, num_steps=2)
    np.testing.assert_array_equal(b.latents, again.latents)


def test_larger_frames_are_resized(tiny_pipe):
    result = tiny_pipe.generate(tiny_clip(3, size=32), horizon=1, num_steps=1)
    assert result.frames.shape == (1, 1, 16, 16, 3)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"horizon": 0}, UsageError, "horizon"),
        ({"num_samples": 0}, UsageError, "num_samples"),
        ({"num_steps": 0}, UsageError, "num_steps"),
        ({"seed": -1}, UsageError, "seed"),
    ],
)
def test_bad_arguments(tiny_pipe, kwargs, error, match):
    with pytest.raises(error, match=match):
        tiny_pipe.stream(tiny_clip(3), **kwargs)


def test_short_or_malformed_context_is_an_input_error(tiny_pipe):
    with pytest.raises(InputError, match="at least 2"):
        tiny_pipe.stream(tiny_clip(1), horizon=1)
    with pytest.raises(InputError, match="shaped"):
        tiny_pipe.stream(np.zeros((3, 16, 16)), horizon=1)


def test_scores_of_a_perfect_and_a_blurred_prediction():
    from genmotion.world.metrics import frame_scores

    clip = tiny_clip(2, size=32)
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(2, 32, 32, 3))
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    classes = rng.integers(0, 4, size=(2, 32, 32))
    depth = rng.uniform(1, 30, size=(2, 32, 32))
    gt = {"rgb": clip, "classes": classes, "depth": depth, "normals": normals}
    pred = {"rgb": clip, "segmentation": classes, "depth": depth, "normals": normals}
    s = frame_scores(pred, gt)
    assert np.allclose(s["miou"], 1) and np.allclose(s["abs_rel"], 0) and np.allclose(s["delta1"], 1)
    assert np.allclose(s["normal_11"], 1) and np.allclose(s["sharpness"], 1) and (s["psnr"] > 90).all()
    flat = np.broadcast_to(clip.mean((1, 2), keepdims=True).astype(np.uint8), clip.shape)
    blurred = frame_scores({**pred, "rgb": flat, "depth": depth * 2}, gt)
    assert (blurred["sharpness"] < 0.1).all()
    assert np.allclose(blurred["abs_rel"], 1) and np.allclose(blurred["delta1"], 0)
