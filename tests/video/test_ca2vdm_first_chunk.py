"""Ca2-VDM with a first-chunk model: a VideoAR model draws the first chunk, the flow model continues from its
latents as a clean prefix; stream == generate == latents; round trip; `genmotion convert keyframe`; refusals."""

import numpy as np
import pytest
import torch
from test_video_pipeline import _FakeEncoder
from video_tiny import tiny_ca2vdm, tiny_model

from genmotion.cli.app import main
from genmotion.engine.flow import FlowLoopConfig, flow_generate
from genmotion.errors import UsageError
from genmotion.video.ca2vdm.pipeline import FIRST_CHUNK_DIR, Ca2VDMPipeline, ReencodedContext
from genmotion.video.videoar.pipeline import VideoARPipeline

PROMPT = "a green wedge rising"


@pytest.fixture(scope="module")
def pipes():
    flow = Ca2VDMPipeline(tiny_ca2vdm(), encoder=_FakeEncoder())
    first = VideoARPipeline(tiny_model(), encoder=_FakeEncoder())
    return flow, first, flow.with_first_chunk(first)


def test_the_first_chunk_is_the_frame_models_and_the_rest_continues_from_it(pipes):
    flow, first, both = pipes
    chunks = list(both.stream(PROMPT, num_frames=7, seed=0, num_steps=2))
    assert [c.index for c in chunks] == [0, 2, 4, 6] and sum(len(c.frames) for c in chunks) == 7
    generator = torch.Generator().manual_seed(0)
    drawn = first.generate(PROMPT, num_frames=2, generator=generator).frames
    # the first chunk: the frame model's frames through this model's autoencoder (one decoder for the clip)
    prefix = both.model.encode_tokens(torch.as_tensor(drawn).permute(0, 3, 1, 2).float().div(127.5).sub(1)[None])
    np.testing.assert_array_equal(chunks[0].frames, both.decode_latents(prefix))
    # the flow model's chunks are its own continuation of those frames' latents (the same generator, drawn on),
    # each committed re-encoded
    rest = flow_generate(
        both.conditioned_flow(PROMPT), both.policy("shared"), both.frame_layout,
        FlowLoopConfig(num_frames=5, num_steps=2), generator=generator, prefix_BFNC=prefix,
        project=ReencodedContext(both.model, prefix),
    )  # fmt: skip
    prev = both.model.tokens_to_latents(prefix[:, -1:])[:, 0]
    expected = both.model.decode_tokens(rest, prev)[0].clamp(-1, 1).add(1).mul(127.5).round().byte()
    np.testing.assert_array_equal(np.concatenate([c.frames for c in chunks[1:]]), expected.permute(0, 2, 3, 1).numpy())
    plain = flow.generate(PROMPT, num_frames=7, seed=0, num_steps=2).frames
    assert not np.array_equal(plain[2:], np.concatenate([c.frames for c in chunks[1:]]))


def test_stream_generate_latents_agree_and_short_clips(pipes):
    _, _, both = pipes
    frames = both.generate(PROMPT, num_frames=5, seed=1, num_steps=2).frames
    latents = both.latents(PROMPT, num_frames=5, seed=1, num_steps=2)
    assert latents.shape[:2] == (1, 5)
    np.testing.assert_array_equal(both.decode_latents(latents), frames)
    assert both.generate(PROMPT, num_frames=1, seed=0).frames.shape[0] == 1
    assert both.latents(PROMPT, num_frames=2, seed=0).shape[1] == 2
    exact = both.latents(PROMPT, num_frames=6, seed=0, num_steps=2, cache="recompute")
    torch.testing.assert_close(both.latents(PROMPT, num_frames=6, seed=0, num_steps=2), exact, atol=1e-5, rtol=0)


def test_round_trip_and_convert_cli(pipes, tmp_path):
    flow, first, both = pipes
    flow.save_pretrained(tmp_path / "flow")
    first.save_pretrained(tmp_path / "frames")
    out = tmp_path / "both"
    args = ["convert", "keyframe", "--video", str(tmp_path / "flow"), "--keyframe", str(tmp_path / "frames")]
    assert main([*args, "-o", str(out)]) == 0
    assert (out / FIRST_CHUNK_DIR / "model.safetensors").is_file()
    loaded = Ca2VDMPipeline.from_pretrained(out)
    loaded.encoder = _FakeEncoder()
    assert isinstance(loaded.first_chunk, VideoARPipeline)
    ref = Ca2VDMPipeline.from_pretrained(tmp_path / "flow").with_first_chunk(
        VideoARPipeline.from_pretrained(tmp_path / "frames")
    )
    ref.encoder = _FakeEncoder()
    np.testing.assert_array_equal(
        loaded.generate(PROMPT, num_frames=4, seed=0, num_steps=2).frames,
        ref.generate(PROMPT, num_frames=4, seed=0, num_steps=2).frames,
    )
    # a ca2vdm checkpoint as the keyframe: exit 2, nothing written
    bad = ["convert", "keyframe", "--video", str(tmp_path / "flow"), "--keyframe", str(out), "-o", str(tmp_path / "x")]
    assert main(bad) == 2 and not (tmp_path / "x").exists()


def test_a_first_chunk_model_of_another_frame_size_is_refused(pipes):
    flow, _, _ = pipes
    big = VideoARPipeline.from_pretrained("videoar-toy")  # 64x64 frames; the tiny model's are 16x16
    with pytest.raises(UsageError, match="frame size"):
        flow.with_first_chunk(big)
