"""LBW watermark: keys, keyed green lists, the logits bias, no watermark == plain sampling bit for bit, the
z-test (watermarked tokens detected, unwatermarked images below the threshold on the tiny checkpoint and
var-toy), `genmotion image --watermark` and `genmotion watermark detect` exit codes, the bench part."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from image_core_tiny import TINY, seeded
from PIL import Image

import genmotion
from genmotion.cli.app import main
from genmotion.errors import UsageError
from genmotion.image_core.convert import save_image_model
from genmotion.image_core.model import VARImageModel
from genmotion.image_core.pipeline import VARPipeline
from genmotion.image_core.sampler import sample_indices
from genmotion.image_core.watermark import (
    Watermark,
    code_groups,
    detect_watermark,
    detection_tokenizer,
    green_groups,
    parse_key,
    prepare_images,
    token_scores,
    watermark_scores,
    z_threshold,
)

KEY = "5eb63bbbe01eeed0"
NAMES = ("red circle", "red square", "blue circle", "blue square", "green circle")


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ckpt") / "tiny-var"
    save_image_model(seeded(VARImageModel, TINY), directory, class_names=NAMES)
    return directory


@pytest.fixture(scope="module")
def tiny(tiny_ckpt):
    return VARPipeline.from_pretrained(tiny_ckpt)


@pytest.mark.parametrize("key", ["", "abc", "5eb63bbbe01eeedz", "5eb63bbb e01eeed0", "a" * 65, 1234567890123456789])
def test_a_key_of_the_wrong_form_is_a_usage_error(key):
    with pytest.raises(UsageError, match="watermark key"):
        Watermark(key)


def test_key_case_does_not_matter_and_bad_settings_are_refused():
    assert parse_key(KEY.upper()) == parse_key(KEY) == bytes.fromhex(KEY)
    with pytest.raises(UsageError):
        Watermark(KEY, mode="medium")  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        Watermark(KEY, gamma=1.0)
    with pytest.raises(UsageError):
        Watermark(KEY, scales=(-1, 3)).scale_indices(4)  # both name the last scale
    with pytest.raises(UsageError):
        Watermark(KEY, scales=(7,)).scale_indices(4)


def test_green_lists_are_keyed_exact_and_repeatable():
    wm = Watermark(KEY, gamma=0.25, groups=8)
    tables = green_groups(wm, (1, 2, 4), (1, 2))
    assert [t.shape for t in tables] == [(8, 4, 8), (8, 16, 8)]
    assert all(bool((t.sum(-1) == 2).all()) for t in tables)  # exactly gamma * groups green at every position
    again = green_groups(Watermark(KEY.upper(), gamma=0.25), (1, 2, 4), (1, 2))
    other = green_groups(Watermark("00" + KEY, gamma=0.25), (1, 2, 4), (1, 2))
    assert all(torch.equal(a, b) for a, b in zip(tables, again, strict=True))
    assert not torch.equal(tables[1], other[1])
    assert not torch.equal(tables[1][0], tables[1][1])  # the pool's entries differ


def test_code_groups_are_deterministic(tiny):
    codebook = tiny.model.vae.quantize.embedding.weight
    groups = code_groups(codebook, 8)
    assert groups.shape == (TINY.vae.vocab_size,) and 0 <= int(groups.min()) and int(groups.max()) < 8
    assert torch.equal(groups, code_groups(codebook.clone(), 8))


def test_bias_adds_delta_or_removes_red_codes_at_watermarked_scales_only(tiny):
    quantizer = tiny.model.vae.quantize
    logits = torch.randn(2, 16, TINY.vae.vocab_size, generator=torch.Generator().manual_seed(0))
    soft = Watermark(KEY, delta=3.0).processor(quantizer, 2, torch.Generator().manual_seed(0))
    hard = Watermark(KEY, mode="hard").processor(quantizer, 2, torch.Generator().manual_seed(0))
    green = soft.green_mask(3)
    assert torch.allclose(soft(logits, 3) - logits, 3.0 * green.float())
    assert torch.equal(hard(logits, 3).isinf(), ~green) and soft(logits, 0) is logits


def test_no_watermark_is_plain_sampling_bit_for_bit(tiny):
    labels = [0, 3, 4]
    plain = tiny.generate(labels, num_images=3, seed=7)
    unset = tiny.generate(labels, num_images=3, seed=7, watermark=None)
    s = tiny.sampling
    direct = sample_indices(
        tiny.model.var, tiny.model.vae.quantize, torch.tensor(labels), generator=torch.Generator().manual_seed(7),
        guidance_scale=s.guidance_scale, top_k=s.top_k, top_p=s.top_p, temperature=s.temperature,
    )  # fmt: skip
    assert np.array_equal(plain.images, unset.images)
    triples = zip(plain.tokens, unset.tokens, direct, strict=True)
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in triples)
    marked = tiny.generate(labels, num_images=3, seed=7, watermark=Watermark(KEY))  # the last two scales
    assert all(torch.equal(a, b) for a, b in zip(plain.tokens[:-2], marked.tokens[:-2], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(plain.tokens[-2:], marked.tokens[-2:], strict=True))


def test_watermarked_tokens_are_detected_and_plain_ones_are_not(tiny):
    hard = Watermark(KEY, mode="hard")
    marked = tiny.generate(list(range(5)), num_images=5, seed=1, watermark=hard)
    plain = tiny.generate(list(range(5)), num_images=5, seed=1)
    T = sum(p * p for p in TINY.var.patch_nums[-2:])
    z_marked = token_scores(marked.tokens, tiny.model.vae.quantize, hard).max(dim=1).values
    z_plain = token_scores(plain.tokens, tiny.model.vae.quantize, hard).max(dim=1).values
    threshold = z_threshold(0.01, hard.pool_size, T)
    assert torch.allclose(z_marked, torch.full((5,), math.sqrt(T)).double())  # every token green: z = sqrt(T)
    assert bool((z_marked > threshold).all()) and bool((z_plain < threshold).all())
    soft = tiny.generate(list(range(5)), num_images=5, seed=1, watermark=Watermark(KEY))
    z_soft = token_scores(soft.tokens, tiny.model.vae.quantize, Watermark(KEY)).max(dim=1).values
    assert bool((z_soft > threshold).all())  # the untrained model is unsure: delta 4 wins nearly every token


def test_unwatermarked_images_stay_below_the_threshold(tiny):
    threshold = z_threshold(0.01, 8, sum(p * p for p in TINY.var.patch_nums[-2:]))
    images = tiny.generate(list(range(5)), num_images=20, seed=2).images
    z = watermark_scores(tiny.model.vae, prepare_images(torch.from_numpy(images), tiny.height), Watermark(KEY))
    assert z.shape == (20, 8) and float(z.max()) < threshold
    result = detect_watermark(tiny, images[0], KEY)
    assert not result.detected and result.z < result.threshold == pytest.approx(threshold)
    assert result.tokens == sum(p * p for p in TINY.var.patch_nums[-2:]) and "no watermark" in result.summary()


def test_unwatermarked_var_toy_images_stay_below_the_threshold():
    pipe = genmotion.load("var-toy")
    images = pipe.generate(list(range(12)), num_images=24, seed=0).images
    x = prepare_images(torch.from_numpy(images), pipe.height)
    for vae in (pipe.model.vae, detection_tokenizer(pipe)):  # the model's tokenizer and the shipped watermark pair
        assert float(watermark_scores(vae, x, Watermark(KEY)).max()) < z_threshold(0.01, 8, 100)  # 36 + 64 tokens
    assert detection_tokenizer(pipe) is not pipe.model.vae


def _tail(count, tokens, gamma=Fraction(1, 2)):
    """P(Binomial(tokens, gamma) >= count), exactly in fractions (independent of the module's log-space sum)."""
    return float(sum(math.comb(tokens, k) * gamma**k * (1 - gamma) ** (tokens - k) for k in range(count, tokens + 1)))


def _png(path, array):
    Image.fromarray(array).save(path)
    return str(path)


def test_image_watermark_flags(tiny_ckpt, tmp_path):
    base = ["image", "--ckpt", str(tiny_ckpt), "--class", "0"]
    out = tmp_path / "marked.png"
    assert main([*base, "--watermark", KEY, "--watermark-mode", "hard", "-o", str(out)]) == 0 and out.is_file()
    assert main([*base, "--watermark", "not-a-key", "-o", str(tmp_path / "a.png")]) == 2
    assert main([*base, "--watermark", KEY, "--watermark-mode", "medium", "-o", str(tmp_path / "b.png")]) == 2
    assert main([*base, "--watermark-mode", "hard", "-o", str(tmp_path / "c.png")]) == 2  # no key
    assert main([*base, "--watermark", KEY, "--tts", "2", "-o", str(tmp_path / "d.png")]) == 2
    assert not any((tmp_path / n).exists() for n in ("a.png", "b.png", "c.png", "d.png"))


def test_detect_exits_0_found_1_not_found_2_bad_flags_3_bad_image(tiny, tiny_ckpt, tmp_path, capsys):
    image = tiny.generate(1, num_images=1, seed=4).images[0]
    path = _png(tmp_path / "plain.png", image)
    detect = ["watermark", "detect", path, "--ckpt", str(tiny_ckpt)]
    assert main([*detect, "--key", KEY]) == 1
    assert "no watermark" in capsys.readouterr().out
    # the verdict follows the stated false-positive rate: a rate whose threshold lies below this image's z finds it
    keys = [f"{i:02x}" + KEY[2:] for i in range(8)]
    key, z = max(((k, detect_watermark(tiny, image, k).z) for k in keys), key=lambda kz: kz[1])
    T = sum(p * p for p in TINY.var.patch_nums[-2:])
    green = round(T / 2 + z * math.sqrt(T) / 2)  # the image's green count G, back from z
    fpr = 8 * _tail(green, T) * 1.001  # the smallest rate whose exact threshold G reaches
    assert fpr < 0.99 and main([*detect, "--key", key, "--fpr", f"{fpr:.6f}"]) == 0
    assert f"z = {z:.2f}" in capsys.readouterr().out
    assert main([*detect, "--key", "xyz"]) == 2
    assert main([*detect, "--key", KEY, "--fpr", "0"]) == 2
    (tmp_path / "junk.png").write_bytes(b"not an image")
    assert main(["watermark", "detect", str(tmp_path / "junk.png"), "--key", KEY, "--ckpt", str(tiny_ckpt)]) == 3
    assert main(["watermark", "detect", str(tmp_path / "missing.png"), "--key", KEY]) == 3


def test_bench_part_watermark_adds_rows(tiny_ckpt, tmp_path):
    out = tmp_path / "image.json"
    args = ["bench", "image", "--quick", "--threads", "1", "--ckpt", str(tiny_ckpt), "--json", str(out)]
    assert main([*args, "--parts", "watermark"]) == 0
    r = json.loads(out.read_text())["watermark"]
    assert [row["setting"] for row in r["rows"]] == ["no watermark", "LBW soft delta 4", "LBW hard"]
    for mode in ("soft", "hard"):
        rates = r[mode]["attacks"]
        assert set(rates) == {"clean", "jpeg75", "resize0.5", "crop0.75", "noise0.05"}
        assert all(0.0 <= v["detection_at_empirical"] <= 1.0 and v["fpr_at_empirical"] <= 0.01 for v in rates.values())
    assert r["hard"]["z_sampled_tokens_median"] == pytest.approx(5.0)  # sqrt(25 tokens): all green when sampled
    assert r["hard"]["psnr_to_model_decoder_db"] is None  # no watermark tokenizer: the model's own decodes
    for mode in ("soft", "hard"):  # the other read-backs: the exact latent (a ceiling) and decoder inversion
        ceiling, inversion = r[mode]["kept_exact_latent"], r[mode]["decoder_inversion"]
        assert len(ceiling["groups"]) == len(TINY.var.patch_nums) and all(0 <= v <= 1 for v in ceiling["groups"])
        assert set(inversion["attacks"]) == {"clean", "jpeg75", "resize0.5"} and inversion["steps"] == 40
        assert all(v["fpr_at_empirical"] <= 0.01 and v["seconds_per_image"] > 0 for v in inversion["attacks"].values())


def test_the_var_family_variants_and_the_watermark(tmp_path):
    out = tmp_path / "m.png"
    assert main(["image", "--model", "m-var", "--class", "0", "--watermark", KEY, "-o", str(out)]) == 0
    assert main(["image", "--model", "hmar", "--class", "0", "--watermark", KEY, "-o", str(tmp_path / "h.png")]) == 0
    assert main(["image", "--model", "flexvar", "--class", "0", "--watermark", KEY, "-o", str(tmp_path / "f.png")]) == 2
    assert main(["watermark", "detect", str(out), "--key", KEY, "--ckpt", "m-var-toy"]) in (0, 1)
    assert main(["watermark", "detect", str(out), "--key", KEY, "--ckpt", "flexvar-toy"]) == 2
    assert main(["image", "--model", "flowar", "--class", "0", "--watermark", KEY, "-o", str(tmp_path / "w.png")]) == 2
    assert not (tmp_path / "f.png").exists() and not (tmp_path / "w.png").exists()
