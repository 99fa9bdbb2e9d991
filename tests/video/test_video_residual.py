"""Temporal residual coding: closed-loop coding, "no change" = code 0 copied exactly, and the sampler building
exactly the inputs and latents the training pass teaches."""

import dataclasses

import pytest
import torch
from video_tiny import TINY_TOKENIZER, TINY_TRANSFORMER

from genmotion.video.config import VideoTokenizerConfig
from genmotion.video.residual import code_residual, quantize_clip, scale_inputs, teacher_forcing
from genmotion.video.tokenizer import VideoTokenizer
from genmotion.video.videoar.config import SamplingConfig, VideoARConfig
from genmotion.video.videoar.model import VideoAR
from genmotion.video.videoar.sampler import stream_latents

TEMPORAL = dataclasses.replace(TINY_TOKENIZER, quant_resi=0.0, temporal_residual=True, deadzone=0.01)


def _tokenizer(seed: int = 0) -> VideoTokenizer:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tok = VideoTokenizer(TEMPORAL)
        for name, p in tok.named_parameters():
            if "embedding" not in name:
                p.data.add_(torch.randn_like(p) * 0.05)
    return tok.eval()


def test_config_needs_identity_phi():
    with pytest.raises(ValueError, match="quant_resi"):
        VideoTokenizerConfig(**{**dataclasses.asdict(TINY_TOKENIZER), "temporal_residual": True})


def test_code_zero_is_pinned_to_zero():
    tok = _tokenizer()
    assert torch.count_nonzero(tok.quantize.embedding.weight[0]) == 0
    tok.quantize.embedding.weight.data[0] = 1.0  # even a corrupted row 0 codes nothing
    assert torch.count_nonzero(tok.codebook()[0]) == 0


def test_closed_loop_decoding_matches_the_coder():
    g = torch.Generator().manual_seed(1)
    video = torch.rand(2, 5, 3, 16, 16, generator=g) * 2 - 1
    tok = _tokenizer()
    with torch.no_grad():
        codes = tok.quantize_clip(tok.latents(video))
        fhat = tok.indices_to_fhat(codes.indices)  # per-frame code sums added up over time
    torch.testing.assert_close(fhat, codes.fhat, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(codes.base[:, 1:], codes.fhat[:, :-1])
    assert torch.count_nonzero(codes.base[:, 0]) == 0


def test_a_still_clip_codes_no_change_after_frame_zero():
    g = torch.Generator().manual_seed(2)
    frame = torch.rand(1, 1, 3, 16, 16, generator=g) * 2 - 1
    tok = _tokenizer()
    with torch.no_grad():
        codes = tok.quantize_clip(tok.latents(frame.expand(1, 4, -1, -1, -1).contiguous()))
    for idx in codes.indices:
        assert bool((idx[:, 1:] == 0).all())  # only the quantisation error is left, inside the dead zone
    torch.testing.assert_close(codes.fhat[:, 3], codes.fhat[:, 0])


def test_dead_zone_and_error_injection():
    codebook = torch.randn(16, 4)
    small = torch.full((1, 4, 2, 2), 0.05)
    assert bool((code_residual(codebook, (1, 2), small, deadzone=0.01).indices[0] == 0).all())
    big = torch.randn(3, 4, 2, 2) * 3
    g = torch.Generator().manual_seed(0)
    flipped = code_residual(codebook, (1, 2), big, deadzone=0.0, flip_rate_B=torch.tensor([0.0, 1.0, 0.0]), generator=g)
    clean = code_residual(codebook, (1, 2), big, deadzone=0.0)
    assert torch.equal(flipped.indices[0][0], clean.indices[0][0])
    assert bool((flipped.indices[0][1] != 0).all())  # random replacements never pick "no change"


def test_teacher_forcing_without_errors_is_the_tokenizer_coding():
    g = torch.Generator().manual_seed(3)
    f = torch.randn(2, 4, 4, 2, 2, generator=g)
    cb = torch.cat([torch.zeros(1, 4), torch.randn(31, 4, generator=g)])
    tf = teacher_forcing(cb, (1, 2), f, deadzone=0.01, rate_B=torch.zeros(2))
    codes = quantize_clip(cb, (1, 2), f, deadzone=0.01)
    for a, b in zip(tf.targets, codes.indices, strict=True):
        assert torch.equal(a, b.flatten(0, 1))
    torch.testing.assert_close(tf.context, codes.fhat.flatten(0, 1))
    expected = scale_inputs(cb, (1, 2), [i.flatten(0, 1) for i in codes.indices], codes.base.flatten(0, 1))
    torch.testing.assert_close(tf.inputs, expected)


def _forcing(targets):
    """A logits processor that makes the sampler draw the given codes, scale after scale, frame after frame."""
    order = iter([t for frame in targets for t in frame])

    def force(logits, step):
        want = next(order)  # (B, l)
        out = torch.full_like(logits, float("-inf"))
        return out.scatter(-1, want[..., None], 0.0)

    return force


def test_sampler_reproduces_the_training_coding():
    """Forced to draw a clip's target codes, the sampler's latents are the clip's closed-loop coding: what the
    transformer reads at inference is what it was trained on."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = VideoAR(VideoARConfig(tokenizer=TEMPORAL, transformer=TINY_TRANSFORMER)).eval()
    g = torch.Generator().manual_seed(4)
    video = torch.rand(1, 4, 3, 16, 16, generator=g) * 2 - 1
    with torch.no_grad():
        codes = model.tokenizer.quantize_clip(model.tokenizer.latents(video))
        targets = [[i[:, t] for i in codes.indices] for t in range(4)]
        text = torch.randn(1, 384, generator=g)
        frames = list(
            stream_latents(model, lambda f: text, 4, SamplingConfig(guidance_scale=1.0), processors=[_forcing(targets)])
        )
    for t, frame in enumerate(frames):
        torch.testing.assert_close(frame.fhat, codes.fhat[:, t], atol=1e-5, rtol=1e-5)


def test_residual_guidance_changes_only_the_later_frames():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = VideoAR(VideoARConfig(tokenizer=TEMPORAL, transformer=TINY_TRANSFORMER)).eval()
        for p in model.parameters():
            p.data.add_(torch.randn_like(p) * 0.3)  # a model whose conditional and unconditional draws differ
    text = torch.randn(1, 384, generator=torch.Generator().manual_seed(5))

    def frames(**kw):
        settings = SamplingConfig(guidance_scale=3.0, **kw)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            return [f.tokens for f in stream_latents(model, lambda f: text, 3, settings, generator=g)]

    same, plain, other = frames(), frames(residual_guidance=3.0), frames(residual_guidance=1.0)
    assert all(torch.equal(a, b) for fa, fb in zip(same, plain, strict=True) for a, b in zip(fa, fb, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(same[0], other[0], strict=True))  # frame 0: the same draw
    assert any(
        not torch.equal(a, b)
        for f_a, f_b in zip(same[1:], other[1:], strict=True)
        for a, b in zip(f_a, f_b, strict=True)
    )
