"""The video tokenizer is causal in time, and streaming decode equals clip decode."""

import pytest
import torch

from genmotion.errors import InputError
from genmotion.video.tokenizer import VideoTokenizer
from genmotion.video.videoar.loss import requantize_with_errors


@pytest.fixture
def tokenizer(model) -> VideoTokenizer:
    return model.tokenizer


def test_encoder_is_causal_in_time(tokenizer):
    g = torch.Generator().manual_seed(0)
    video = torch.rand(1, 4, 3, 16, 16, generator=g) * 2 - 1
    changed = video.clone()
    changed[:, 2:] = -video[:, 2:]
    with torch.no_grad():
        a, b = tokenizer.latents(video), tokenizer.latents(changed)
    torch.testing.assert_close(a[:, :2], b[:, :2])
    assert not torch.allclose(a[:, 2], b[:, 2])


def test_streaming_decode_equals_clip_decode(tokenizer):
    g = torch.Generator().manual_seed(1)
    video = torch.rand(2, 3, 3, 16, 16, generator=g) * 2 - 1
    with torch.no_grad():
        indices = tokenizer.encode(video)
        assert [i.shape for i in indices] == [(2, 3, 1), (2, 3, 4)]
        clip = tokenizer.decode_indices(indices)
        fhat = tokenizer.quantize.indices_to_fhat([i.flatten(0, 1) for i in indices]).view(2, 3, 4, 2, 2)
        prev = None
        for t in range(3):
            frame = tokenizer.decode_frame(fhat[:, t], prev)
            torch.testing.assert_close(frame, clip[:, t])
            prev = fhat[:, t]


def test_requantize_without_errors_matches_the_quantizer(tokenizer):
    f = torch.randn(5, 4, 2, 2, generator=torch.Generator().manual_seed(2))
    fhat, indices = requantize_with_errors(tokenizer.quantize, f, torch.zeros(5), torch.Generator())
    torch.testing.assert_close(fhat, tokenizer.quantize.f_to_fhats(f)[-1])
    assert all(torch.equal(a, b) for a, b in zip(indices, tokenizer.quantize.f_to_indices(f), strict=True))
    noisy, _ = requantize_with_errors(tokenizer.quantize, f, torch.ones(5), torch.Generator().manual_seed(0))
    assert not torch.allclose(noisy, fhat)


def test_wrong_frame_size_is_a_clear_error(tokenizer):
    with pytest.raises(InputError, match="16x16"):
        tokenizer.latents(torch.zeros(1, 2, 3, 20, 20))
