"""LBW detection statistics: the threshold is exact for the binomial null at every token count, unwatermarked
var-toy images under random keys are detected at no more than the stated rate, and the two other read-backs
the bench measures: decoder inversion and the kept-code count."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from image_core_tiny import TINY, seeded

import genmotion
from genmotion.image_core.model import VARImageModel
from genmotion.image_core.watermark import (
    Watermark,
    binomial_tail,
    critical_count,
    detection_tokenizer,
    prepare_images,
    token_scores,
    z_threshold,
)
from genmotion.image_core.watermark_probe import invert_decoder, kept_rates


def _tail(count: int, tokens: int, gamma: Fraction) -> Fraction:
    """P(Binomial(tokens, gamma) >= count) in exact fractions."""
    return sum((math.comb(tokens, k) * gamma**k * (1 - gamma) ** (tokens - k) for k in range(count, tokens + 1)),
               Fraction(0))  # fmt: skip


@pytest.mark.parametrize("gamma", [Fraction(1, 2), Fraction(1, 4), Fraction(1, 8)])
@pytest.mark.parametrize(("fpr", "pool"), [(0.01, 8), (0.05, 1), (0.001, 8)])
def test_the_threshold_keeps_the_false_positive_rate_at_every_token_count(gamma, fpr, pool):
    for tokens in range(1, 131):
        k = critical_count(fpr, pool, tokens, float(gamma))
        assert pool * _tail(k, tokens, gamma) <= fpr  # the stated rate holds exactly (Bonferroni over the pool)
        assert k == math.floor(gamma * tokens) or pool * _tail(k - 1, tokens, gamma) > fpr  # and no lower count does
        threshold, sd = z_threshold(fpr, pool, tokens, float(gamma)), math.sqrt(tokens * gamma * (1 - gamma))
        z = [(g - float(gamma) * tokens) / float(sd) for g in (k - 1, k)]
        assert z[0] < threshold < z[1] or (k > tokens and z[0] < threshold)  # z > threshold <=> G >= k
    assert binomial_tail(3, 4, 0.5) == pytest.approx(5 / 16) and binomial_tail(0, 4, 0.5) == 1.0


def test_unwatermarked_var_toy_images_under_random_keys_meet_the_stated_rate():
    pipe = genmotion.load("var-toy")
    images = pipe.generate(list(range(12)), num_images=24, seed=3).images
    read = detection_tokenizer(pipe).encode(prepare_images(torch.from_numpy(images), pipe.height))
    quantizer, fpr = pipe.model.vae.quantize, 0.2  # a high rate, so that a few hundred keys can tell it from more
    z_pool, z_single = [], []
    for word in torch.randint(2**62, (300,), generator=torch.Generator().manual_seed(5)).tolist():
        key = f"{word:016x}"  # 300 fixed random keys
        z_pool.append(token_scores(read, quantizer, Watermark(key)).max(dim=1).values)
        z_single.append(token_scores(read, quantizer, Watermark(key, pool_size=1))[:, 0])
    # (keys, images); one key's images are correlated, so every bound below holds for 300 draws, not 7,200
    detected = float((torch.stack(z_pool) > z_threshold(fpr, 8, 100)).double().mean())
    single = torch.stack(z_single)  # for a random key G ~ Binomial(100, 1/2) exactly: z has mean 0, variance 1
    assert detected <= fpr + 0.07  # 3 sd of a rate of 0.2 over 300 draws
    assert abs(float(single.mean())) < 0.25 and 0.75 < float(single.var(dim=0).mean()) < 1.25  # ~4 sd


@pytest.fixture(scope="module")
def tiny_vae():
    return seeded(VARImageModel, TINY).vae


def test_kept_rates_count_codes_and_groups():
    groups = torch.tensor([0, 0, 1, 1])
    rates = kept_rates([torch.tensor([[0, 1, 2, 3]])], [torch.tensor([[0, 1, 3, 3]])], groups)
    assert rates == {"codes": [0.75], "groups": [1.0]}


def test_decoder_inversion_fits_the_image_better_than_the_encoder_and_leaves_the_tokenizer_alone(tiny_vae):
    images = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    before = {k: v.clone() for k, v in tiny_vae.state_dict().items()}
    with torch.no_grad():
        encoder_mse = float((tiny_vae.fhat_to_image(tiny_vae.image_to_latent(images)) - images).square().mean())
    latent, psnr = invert_decoder(tiny_vae, images, steps=30, lr=0.05)
    assert latent.shape == (3, TINY.vae.latent_channels, 4, 4) and not latent.requires_grad
    assert psnr > 10 * math.log10(4.0 / encoder_mse) + 0.5
    assert all(torch.equal(v, tiny_vae.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in tiny_vae.parameters())
