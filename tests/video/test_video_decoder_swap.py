"""A larger decoder for the same tokens: the pooled encoder gives a 2x frame the tokens the old tokenizer gives
its area-pooled copy, the new decoder makes 2x frames, `genmotion convert decoder` puts it into videoar and
ca2vdm checkpoints (the first-chunk model too) and refuses a decoder of other tokens."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from video_tiny import TINY_TOKENIZER, tiny_ca2vdm, tiny_model

from genmotion.checkpoint import save_pretrained
from genmotion.cli.app import main
from genmotion.config import to_dict
from genmotion.errors import UsageError
from genmotion.video.ca2vdm.pipeline import Ca2VDMPipeline
from genmotion.video.config import VideoTokenizerConfig
from genmotion.video.decoder_swap import with_decoder
from genmotion.video.tokenizer import VideoTokenizer
from genmotion.video.tokenizer_task import VideoTokenizerModelConfig, with_new_decoder
from genmotion.video.videoar.config import SamplingConfig
from genmotion.video.videoar.pipeline import VideoARPipeline
from genmotion.video.videoar.sampler import stream_latents

CLIP = torch.rand(2, 3, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1  # (B, T, 3, 2H, 2W)


def _larger(model) -> VideoTokenizer:
    """The tiny model's tokenizer with a new (random, then perturbed) decoder for 32x32 frames."""
    big = with_new_decoder(model.tokenizer, 32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        for p in big.decoder.parameters():
            p.data.add_(torch.randn_like(p) * 0.05)
    return big.eval()


def test_config_checks_the_decoder_levels():
    c = dataclasses.replace(TINY_TOKENIZER, image_size=32, input_pool=2, decoder_widths=(8, 8, 8, 8))
    assert c.downsample == 16 and c.decoder_level_widths == (8, 8, 8, 8)
    with pytest.raises(ValueError, match="decoder upsamples"):
        dataclasses.replace(TINY_TOKENIZER, image_size=32, input_pool=2)
    with pytest.raises(ValueError, match="power of two"):
        dataclasses.replace(TINY_TOKENIZER, input_pool=3)
    with pytest.raises(ValueError, match="output_size"):
        VideoTokenizerModelConfig(output_size=64)


def test_same_tokens_from_the_pooled_frame_and_larger_frames_out():
    model = tiny_model(0)
    big = _larger(model)
    assert big.config.image_size == 32 and big.config.input_pool == 2 and big.config.decoder_widths == (8, 8, 8, 8)
    small = F.avg_pool2d(CLIP.flatten(0, 1), 2).view(2, 3, 3, 16, 16)
    for a, b in zip(big.encode(CLIP), model.tokenizer.encode(small), strict=True):
        assert torch.equal(a, b)
    frames = big.decode_indices(big.encode(CLIP))
    assert frames.shape == (2, 3, 3, 32, 32)
    with pytest.raises(UsageError, match="power of two"):
        with_new_decoder(model.tokenizer, 24)


def _tokens(model, text, n=3):
    settings = SamplingConfig(guidance_scale=2.0, temperature=0.0)
    with torch.no_grad():
        made = stream_latents(model, lambda f: text, n, settings, generator=torch.Generator())
        return [t for frame in made for t in frame.tokens]


def _frames(pipe, n=3):
    return pipe.generate("a red ball", num_frames=n, seed=1).frames


def test_videoar_with_the_larger_decoder_draws_the_same_tokens_larger(tmp_path):
    text = torch.randn(1, 384, generator=torch.Generator().manual_seed(7))

    class Encoder:  # a fixed prompt embedding: no text model in the tests
        def encode(self, prompts):
            return type("E", (), {"pooled": text})()

    sampling = SamplingConfig(temperature=0.0)
    model = tiny_model(0).to(torch.bfloat16).float()  # as saved: the decoder run starts from the saved weights
    pipe = VideoARPipeline(model, encoder=Encoder(), sampling=sampling)
    small = _frames(pipe)
    pipe.save_pretrained(tmp_path / "video")
    big = _larger(pipe.model)
    config = {"kind": "video-tokenizer", "tokenizer": to_dict(big.config)}
    save_pretrained(tmp_path / "dec", big, config, None, torch.bfloat16)
    assert main(["convert", "decoder", "--ckpt", str(tmp_path / "video"), "--decoder", str(tmp_path / "dec"),
                 "-o", str(tmp_path / "out")]) == 0  # fmt: skip
    back = VideoARPipeline.from_pretrained(tmp_path / "out")
    back.encoder = Encoder()
    assert (back.height, back.width) == (32, 32)
    made = _frames(back)
    assert made.shape == (3, 32, 32, 3) and small.shape == (3, 16, 16, 3)
    # the swap changes the pictures, not the tokens: greedy tokens before and after are the same
    swapped = with_decoder(VideoARPipeline(tiny_model(0).to(torch.bfloat16).float(), encoder=Encoder()), big)
    assert [t.tolist() for t in _tokens(swapped.model, text)] == [t.tolist() for t in _tokens(model, text)]
    assert main(["convert", "decoder", "--ckpt", "var-toy", "--decoder", str(tmp_path / "dec"),
                 "-o", str(tmp_path / "x")]) == 2  # fmt: skip
    other = with_new_decoder(tiny_model(3).tokenizer, 32)  # other encoder weights: other tokens
    with pytest.raises(UsageError, match="same tokens"):
        with_decoder(VideoARPipeline(model, encoder=Encoder()), other)
    wrong = VideoTokenizer(dataclasses.replace(TINY_TOKENIZER, vocab_size=16))
    with pytest.raises(UsageError, match="vocab_size"):
        with_decoder(VideoARPipeline(tiny_model(0), encoder=Encoder()), wrong)


def test_ca2vdm_and_its_first_chunk_get_the_decoder():
    video = tiny_model(0)
    flow = tiny_ca2vdm(0)
    flow.tokenizer.load_state_dict(video.tokenizer.state_dict())
    pipe = Ca2VDMPipeline(flow, encoder=object(), first_chunk=VideoARPipeline(video, encoder=object()))
    big = _larger(video)
    with_decoder(pipe, big)
    assert pipe.height == 32 and pipe.first_chunk is not None and pipe.first_chunk.height == 32
    tokens = flow.encode_tokens(CLIP)
    assert tokens.shape[:2] == (2, 3)
    assert flow.decode_tokens(tokens).shape == (2, 3, 3, 32, 32)


def test_tokenizer_config_loads_without_the_new_fields():
    from genmotion.config import from_dict

    old = {k: v for k, v in to_dict(TINY_TOKENIZER).items() if k not in ("input_pool", "decoder_widths")}
    assert from_dict(VideoTokenizerConfig, old, prefix="t") == TINY_TOKENIZER
