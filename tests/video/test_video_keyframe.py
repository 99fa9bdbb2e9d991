"""Keyframe transformers: frame 0 drawn by the keyframe, committed to the video transformer's cache as if that
transformer had drawn it; composition through `attach_keyframe` and `genmotion convert keyframe`; round trip."""

import dataclasses

import numpy as np
import pytest
import torch
from video_tiny import TINY, tiny_model

from genmotion.cli.app import main
from genmotion.errors import UsageError
from genmotion.video.videoar.config import SamplingConfig
from genmotion.video.videoar.keyframe import attach_keyframe
from genmotion.video.videoar.model import VideoAR
from genmotion.video.videoar.pipeline import VideoARPipeline
from genmotion.video.videoar.sampler import stream_latents

KEY = dataclasses.replace(TINY.transformer, width=48, heads=2, rope_axes=(8, 8, 8))
GREEDY = SamplingConfig(guidance_scale=2.0, temperature=0.0)
TEXT = torch.randn(1, 384, generator=torch.Generator().manual_seed(7))


def _keyframe_checkpoint(seed: int = 1) -> VideoARPipeline:
    """A single-frame VideoAR checkpoint with the tiny video model's tokenizer and its own transformer."""
    video = tiny_model(0)
    with torch.random.fork_rng(devices=[]):  # the weights depend on `seed` alone, not on the tests run before
        torch.manual_seed(seed)
        model = VideoAR(dataclasses.replace(TINY, transformer=KEY))
        for p in model.transformer.parameters():
            p.data.add_(torch.randn_like(p) * 0.05)
    model.tokenizer.load_state_dict(video.tokenizer.state_dict())
    return VideoARPipeline(model.eval(), encoder=object())


def _frames(model: VideoAR, n: int, processors=()) -> list:
    with torch.no_grad():
        made = stream_latents(model, lambda f: TEXT, n, GREEDY, generator=torch.Generator(), processors=processors)
        return list(made)


def _force_first(tokens):
    """Forces frame 0's scales to `tokens`; leaves later frames to the model."""
    calls = iter(range(10**6))

    def force(logits, step):
        if next(calls) >= len(tokens):
            return logits
        out = torch.full_like(logits, float("-inf"))
        return out.scatter(-1, tokens[step].unsqueeze(-1), 0.0)

    return force


def test_frame_zero_is_the_keyframes_and_later_frames_continue_from_it():
    video, key = VideoARPipeline(tiny_model(0), encoder=object()), _keyframe_checkpoint()
    both = attach_keyframe(video, key).model
    made = _frames(both, 3)
    alone = _frames(key.model, 1)  # the keyframe transformer drawing frame 0 by itself
    assert all(torch.equal(a, b) for a, b in zip(made[0].tokens, alone[0].tokens, strict=True))
    plain = _frames(video.model, 1)
    assert any(not torch.equal(a, b) for a, b in zip(made[0].tokens, plain[0].tokens, strict=True))
    # the video model, made to draw the keyframe's frame 0, then draws the same later frames: same cache
    forced = _frames(video.model, 3, processors=[_force_first(list(made[0].tokens))])
    for a, b in zip(made[1:], forced[1:], strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a.tokens, b.tokens, strict=True))
        torch.testing.assert_close(a.fhat, b.fhat)
    assert made[2].cache_bytes == forced[2].cache_bytes


def test_keyframe_checkpoint_round_trip(tmp_path):
    both = attach_keyframe(VideoARPipeline(tiny_model(0), encoder=object()), _keyframe_checkpoint())
    both.save_pretrained(tmp_path / "ckpt")
    back = VideoARPipeline.from_pretrained(tmp_path / "ckpt")
    assert back.model.keyframe is not None and back.config.keyframe == KEY
    a, b = _frames(both.model.to(torch.bfloat16).float(), 2), _frames(back.model, 2)
    pairs = [(x, y) for fa, fb in zip(a, b, strict=True) for x, y in zip(fa.tokens, fb.tokens, strict=True)]
    assert all(torch.equal(x, y) for x, y in pairs)


def test_attach_refuses_another_tokenizer_and_a_keyframe_with_a_keyframe():
    video = VideoARPipeline(tiny_model(0), encoder=object())
    other = VideoARPipeline(tiny_model(3), encoder=object())  # same config, other tokenizer weights
    with pytest.raises(UsageError, match="another tokenizer"):
        attach_keyframe(video, other)
    both = attach_keyframe(video, _keyframe_checkpoint())
    with pytest.raises(UsageError, match="already has a keyframe"):
        attach_keyframe(video, both)
    with pytest.raises(ValueError, match="text_dim"):
        VideoAR(dataclasses.replace(TINY, keyframe=dataclasses.replace(KEY, text_dim=128)))


def test_convert_keyframe_cli(tmp_path):
    VideoARPipeline(tiny_model(0), encoder=object()).save_pretrained(tmp_path / "video")
    _keyframe_checkpoint().save_pretrained(tmp_path / "key")
    out = tmp_path / "both"
    args = ["convert", "keyframe", "--video", str(tmp_path / "video"), "--keyframe", str(tmp_path / "key")]
    assert main([*args, "-o", str(out)]) == 0
    assert VideoARPipeline.from_pretrained(out).model.keyframe is not None
    assert main([*args, "-o", str(out)]) == 0  # a previous checkpoint is replaced
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert main([*args, "-o", str(mine)]) == 2  # a folder genmotion did not write is refused, untouched
    assert (mine / "notes.txt").read_text() == "keep"
    assert main(["convert", "keyframe", "--video", "var-toy", "--keyframe", str(tmp_path / "key"), "-o", str(out)]) == 2
    assert main(["convert", "keyframe", "--video", str(tmp_path / "video"), "--keyframe", str(out), "-o",
                 str(tmp_path / "x")]) == 2  # fmt: skip


def test_first_frame_guidance_changes_only_frame_zero_of_a_keyframe_model():
    both = attach_keyframe(VideoARPipeline(tiny_model(0), encoder=object()), _keyframe_checkpoint()).model
    sampled = SamplingConfig(guidance_scale=2.0)

    def run(**kw):
        settings = dataclasses.replace(sampled, **kw)
        with torch.no_grad():
            return list(stream_latents(both, lambda f: TEXT, 2, settings, generator=torch.Generator().manual_seed(0)))

    same, other = run(first_frame_guidance=2.0), run(first_frame_guidance=6.0)
    assert all(torch.equal(a, b) for a, b in zip(run()[0].tokens, same[0].tokens, strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(same[0].tokens, other[0].tokens, strict=True))


def test_first_frame_guidance_is_frame_zeros_scale_on_a_plain_model():
    model = tiny_model(0)

    def run(**kw):
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            return [f.tokens for f in stream_latents(model, lambda f: TEXT, 2, SamplingConfig(**kw), generator=g)]

    mixed = run(guidance_scale=3.0, first_frame_guidance=6.0)
    strong, weak = run(guidance_scale=6.0), run(guidance_scale=1.0)
    assert all(torch.equal(a, b) for a, b in zip(mixed[0], strong[0], strict=True))  # frame 0 at 6
    assert any(not torch.equal(a, b) for a, b in zip(mixed[0], weak[0], strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(mixed[1], strong[1], strict=True))  # frame 1 at 3


def _forced(tokens):
    """A processor that forces every scale of one frame to `tokens` (per scale (B, l))."""

    def force(logits, step):
        out = torch.full_like(logits, float("-inf"))
        return out.scatter(-1, tokens[step].unsqueeze(-1), 0.0)

    return force


@pytest.mark.parametrize("keyframe", [False, True])
def test_first_frame_candidates_keep_the_draw_the_text_explains_best(keyframe):
    from genmotion.video.videoar.sampler import _first_frame, _rows, _sample_frame

    video = VideoARPipeline(tiny_model(0), encoder=object())
    model = attach_keyframe(video, _keyframe_checkpoint()).model if keyframe else video.model
    tr = model.keyframe or model.transformer
    settings = dataclasses.replace(GREEDY, temperature=1.0, first_frame_candidates=4)
    with torch.no_grad():
        fhat, chosen = _first_frame(model, TEXT, settings, torch.Generator().manual_seed(0), ())
        rows4 = _rows(tr, TEXT.repeat_interleave(4, dim=0), True)
        scores: list = []  # the same four draws, scored together
        g = torch.Generator().manual_seed(0)
        _, drawn = _sample_frame(model, 0, rows4, None, None, tr.new_cache(8), settings, g, (),
                                 transformer=tr, commit=False, score=scores)  # fmt: skip
        alone = []  # each draw scored on its own, its tokens forced
        for i in range(4):
            got: list = []
            forced = [d[i : i + 1] for d in drawn]
            _, again = _sample_frame(model, 0, _rows(tr, TEXT, True), None, None, tr.new_cache(2), settings,
                                     None, (_forced(forced),), transformer=tr, commit=False, score=got)  # fmt: skip
            assert all(torch.equal(a, b) for a, b in zip(again, forced, strict=True))
            alone.append(float(got[0]))
    torch.testing.assert_close(scores[0], torch.tensor(alone), atol=1e-3, rtol=1e-4)
    best = max(range(4), key=alone.__getitem__)
    assert all(torch.equal(c[0], d[best]) for c, d in zip(chosen, drawn, strict=True))
    assert len({tuple(d[i].tolist()) for d in drawn[-1:] for i in range(4)}) > 1  # the draws differ
    # the score is log p(x | text) - log p(x | no text): a text that explains nothing scores about 0
    null = _rows(tr, TEXT, True)
    same = torch.cat([null[1:], null[1:]])  # the null condition in both rows
    got = []
    _sample_frame(model, 0, same, None, None, tr.new_cache(2), settings, torch.Generator().manual_seed(0), (),
                  transformer=tr, commit=False, score=got)  # fmt: skip
    assert abs(float(got[0])) < 1e-4


def test_first_frame_candidates_through_the_pipeline():
    pipe = VideoARPipeline(tiny_model(0), encoder=object())
    pipe.text_embedding = lambda prompt: TEXT  # type: ignore[method-assign]
    one = pipe.generate("x", num_frames=2, seed=0).frames
    assert np.array_equal(one, pipe.generate("x", num_frames=2, seed=0, first_frame_candidates=1).frames)
    four = pipe.generate("x", num_frames=2, seed=0, first_frame_candidates=4).frames
    assert four.shape == one.shape
    with pytest.raises(UsageError, match="first_frame_candidates"):
        pipe.generate("x", num_frames=2, first_frame_candidates=0)
