"""Ca2-VDM keyframe: a second flow transformer denoises the first chunk and nothing else; composition through
`attach_keyframe` and `genmotion convert keyframe`; round trip; refusals."""

import dataclasses

import numpy as np
import pytest
import torch
from test_video_pipeline import _FakeEncoder
from video_tiny import tiny_ca2vdm

from genmotion.cli.app import main
from genmotion.errors import UsageError
from genmotion.video.ca2vdm.keyframe import attach_keyframe
from genmotion.video.ca2vdm.model import Ca2VDM
from genmotion.video.ca2vdm.pipeline import Ca2VDMPipeline

PROMPT = "a green wedge rising"


def _pipe(model: Ca2VDM) -> Ca2VDMPipeline:
    return Ca2VDMPipeline(model, encoder=_FakeEncoder())


def _other_flow() -> Ca2VDM:
    """The tiny model's autoencoder with another flow transformer (seed 1's)."""
    model, other = tiny_ca2vdm(0), tiny_ca2vdm(1)
    flow = {k: v for k, v in other.state_dict().items() if not k.startswith(("tokenizer.", "latent_"))}
    model.load_state_dict(flow, strict=False)
    return model


@pytest.fixture(scope="module")
def composed():
    return attach_keyframe(_pipe(tiny_ca2vdm(0)), _pipe(_other_flow()))


def test_the_keyframe_draws_the_first_chunk_and_the_video_transformer_the_rest(composed):
    composed.encoder = _FakeEncoder()
    video, key = _pipe(tiny_ca2vdm(0)), _pipe(_other_flow())
    got = composed.generate(PROMPT, num_frames=6, seed=0, num_steps=2).frames
    np.testing.assert_array_equal(got[:2], key.generate(PROMPT, num_frames=2, seed=0, num_steps=2).frames)
    plain = video.generate(PROMPT, num_frames=6, seed=0, num_steps=2).frames
    assert not np.array_equal(got[2:], plain[2:])  # later chunks read the keyframe's chunk from the cache
    # a keyframe equal to the video transformer changes nothing, bit for bit
    same = attach_keyframe(video, _pipe(tiny_ca2vdm(0)))
    same.encoder = _FakeEncoder()
    np.testing.assert_array_equal(same.generate(PROMPT, num_frames=6, seed=0, num_steps=2).frames, plain)


def test_latents_and_every_policy_use_the_keyframe(composed):
    composed.encoder = _FakeEncoder()
    latents = composed.latents(PROMPT, num_frames=4, seed=0, num_steps=2)
    np.testing.assert_array_equal(
        composed.decode_latents(latents), composed.generate(PROMPT, num_frames=4, seed=0, num_steps=2).frames
    )
    exact = composed.latents(PROMPT, num_frames=6, seed=0, num_steps=2, cache="recompute")
    torch.testing.assert_close(composed.latents(PROMPT, num_frames=6, seed=0, num_steps=2), exact, atol=1e-5, rtol=0)


def test_round_trip_and_convert_cli(composed, tmp_path):
    video, key = _pipe(tiny_ca2vdm(0)), _pipe(_other_flow())
    video.save_pretrained(tmp_path / "video")
    key.save_pretrained(tmp_path / "key")
    out = tmp_path / "composed"
    assert main(["convert", "keyframe", "--video", str(tmp_path / "video"), "--keyframe", str(tmp_path / "key"),
                 "-o", str(out)]) == 0  # fmt: skip
    loaded = Ca2VDMPipeline.from_pretrained(out)
    loaded.encoder = _FakeEncoder()
    assert loaded.config.keyframe == loaded.config.flow
    ref = composed.generate(PROMPT, num_frames=4, seed=0, num_steps=2).frames.astype(int)
    got = loaded.generate(PROMPT, num_frames=4, seed=0, num_steps=2).frames.astype(int)
    assert np.abs(got - ref).max() <= 8  # bf16 weights on disk
    # a keyframe that already has one, and a videoar checkpoint beside a ca2vdm one: exit 2, nothing written
    bad = ["convert", "keyframe", "--video", str(tmp_path / "video"), "--keyframe", str(out), "-o", str(tmp_path / "x")]
    assert main(bad) == 2 and not (tmp_path / "x").exists()
    mixed = ["convert", "keyframe", "--video", str(tmp_path / "video"), "--keyframe", "videoar-toy"]
    assert main([*mixed, "-o", str(tmp_path / "y")]) == 2 and not (tmp_path / "y").exists()


def test_attach_refuses_another_autoencoder_or_architecture():
    video = _pipe(tiny_ca2vdm(0))
    with pytest.raises(UsageError, match="another autoencoder"):
        attach_keyframe(video, _pipe(tiny_ca2vdm(1)))
    wider = dataclasses.replace(video.config.flow, width=48)
    with pytest.raises(ValueError, match="architecture"):
        dataclasses.replace(video.config, keyframe=wider)
