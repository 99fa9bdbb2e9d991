"""VideoAR's copy rule (`copy_threshold`): a token whose previous-frame code is likely enough keeps that code."""

import dataclasses

import numpy as np
import pytest
import torch
from video_tiny import tiny_model

from genmotion.errors import UsageError
from genmotion.video.videoar.config import SamplingConfig
from genmotion.video.videoar.layout import ScaleLayout
from genmotion.video.videoar.pipeline import VideoARPipeline
from genmotion.video.videoar.sampler import _copy_prior, stream_latents

TEXT = torch.randn(1, 384, generator=torch.Generator().manual_seed(7))
SAMPLED = SamplingConfig(guidance_scale=2.0, temperature=1.0)


def _tokens(settings: SamplingConfig, n: int = 4) -> list[list[torch.Tensor]]:
    model = tiny_model(0)
    with torch.no_grad():
        made = stream_latents(model, lambda f: TEXT, n, settings, generator=torch.Generator().manual_seed(3))
        return [list(f.tokens) for f in made]


def test_copy_prior_keeps_the_previous_code_exactly_where_it_is_likely_enough():
    layout = ScaleLayout((1, 2, 3))
    V, B, threshold = 5, 3, 0.3
    g = torch.Generator().manual_seed(0)
    prev = torch.randint(0, V, (B, layout.scale_tokens), generator=g)
    process = _copy_prior(prev, layout, threshold)
    kept = 0
    for step, p in enumerate(layout.patch_nums):
        logits = torch.randn(B, p * p, V, generator=g) * 2
        got = process(logits, step)
        probs = logits.softmax(-1)
        for b in range(B):
            for i, code in enumerate(prev[b, layout.scale_slice(step)].tolist()):
                if probs[b, i, code] >= threshold:  # only the previous code can be drawn
                    kept += 1
                    assert got[b, i, code] == 0 and torch.isinf(got[b, i]).sum() == V - 1
                else:
                    assert torch.equal(got[b, i], logits[b, i])
    assert 0 < kept < B * layout.scale_tokens  # both branches were exercised


def test_copy_threshold_zero_is_the_plain_sampler_and_a_tiny_threshold_copies_frame_zero():
    plain = _tokens(SAMPLED)
    same = _tokens(dataclasses.replace(SAMPLED, copy_threshold=0.0))
    assert all(torch.equal(a, b) for fa, fb in zip(plain, same, strict=True) for a, b in zip(fa, fb, strict=True))
    frozen = _tokens(dataclasses.replace(SAMPLED, copy_threshold=1e-12))
    assert all(torch.equal(a, b) for f in frozen[1:] for a, b in zip(f, frozen[0], strict=True))
    assert any(not torch.equal(a, b) for f in plain[1:] for a, b in zip(f, plain[0], strict=True))
    # frame 0 has no previous frame: the rule leaves it as drawn
    assert all(torch.equal(a, b) for a, b in zip(frozen[0], plain[0], strict=True))


def test_copy_threshold_through_the_pipeline_and_bad_values():
    pipe = VideoARPipeline(tiny_model(0), encoder=object())
    pipe.text_embedding = lambda prompt: TEXT  # type: ignore[method-assign]
    held = pipe.generate("x", num_frames=3, seed=0, copy_threshold=1e-12).frames
    assert np.array_equal(held[1], held[2])
    for bad in (-0.1, 1.5):
        with pytest.raises(UsageError, match="copy_threshold"):
            pipe.generate("x", num_frames=2, copy_threshold=bad)


def test_copy_scales_limits_the_rule_to_the_coarsest_scales():
    """copy_scales k: the processor leaves the finer scales' logits untouched; at a threshold that copies
    everything, frames after the first keep frame 0's codes at the k coarsest scales and draw the finer ones."""
    layout = ScaleLayout((1, 2, 3))
    prev = torch.zeros(2, layout.scale_tokens, dtype=torch.long)
    process = _copy_prior(prev, layout, 1e-12, scales=1)
    logits = torch.randn(2, 4, 5)
    assert process(logits, 1) is logits and process(logits, 2) is logits
    assert torch.isinf(process(torch.randn(2, 1, 5), 0)).sum() == 2 * 4  # the 1x1 scale forced
    plain = _tokens(SAMPLED)
    frozen = _tokens(dataclasses.replace(SAMPLED, copy_threshold=1e-12, copy_scales=1))
    for f in frozen[1:]:
        assert torch.equal(f[0], frozen[0][0])  # the 1x1 scale kept
    assert any(not torch.equal(f[s], frozen[0][s]) for f in frozen[1:] for s in range(1, len(f)))
    every = _tokens(dataclasses.replace(SAMPLED, copy_threshold=1e-12, copy_scales=0))
    assert all(torch.equal(a, b) for f in every[1:] for a, b in zip(f, every[0], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(frozen[0], plain[0], strict=True))  # frame 0 as drawn


def test_copy_scales_bad_value():
    pipe = VideoARPipeline(tiny_model(0), encoder=object())
    pipe.text_embedding = lambda prompt: TEXT  # type: ignore[method-assign]
    with pytest.raises(UsageError, match="copy_scales"):
        pipe.generate("x", num_frames=2, copy_scales=-1)
