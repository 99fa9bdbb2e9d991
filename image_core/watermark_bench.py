"""The `watermark` part of `genmotion bench image`: LBW detection on watermarked and unwatermarked images of one
model, clean and after the usual attacks (JPEG, downscale and back, crop, Gaussian noise), and what it costs
in class accuracy. Besides the encoder's read-back, what two other detectors read: the exact sampled latent
(the ceiling of a better encoder) and decoder inversion (`genmotion.image_core.watermark_probe`).

Axes: B batch, H/W image size, P pool size.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from genmotion.image_core.watermark import (
    Watermark,
    code_groups,
    detection_tokenizer,
    prepare_images,
    token_scores,
    watermark_tokens,
    z_threshold,
)
from genmotion.image_core.watermark_probe import INVERSION_STEPS, exact_latent_read, inversion_read, kept_rates

__all__ = ["ATTACKS", "attack", "detection_rates", "max_scores", "tokens_kept", "watermark_robustness"]

INVERSION_ATTACKS = ("clean", "jpeg75", "resize0.5")  # the target's attacks, read by decoder inversion

BENCH_KEY = "0be5c0ffee5eed5a"
NOISE_SIGMA = 0.05  # of the [0, 1] range: ~13 grey levels
CROP_SHARE = 0.75  # keep the central 75 % of each side, scaled back up


def _pil_map(images_BHW3: np.ndarray, fn: Callable[[Any], Any]) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(fn(Image.fromarray(x)).convert("RGB")) for x in images_BHW3])


def _jpeg(image: Any, quality: int = 75) -> Any:
    from PIL import Image

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).copy()


def _resize(image: Any, factor: float = 0.5) -> Any:
    from PIL import Image

    w, h = image.size
    small = image.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.Resampling.BICUBIC)
    return small.resize((w, h), Image.Resampling.BICUBIC)


def _crop(image: Any) -> Any:
    """The central CROP_SHARE of each side; the detector scales it back to the model's size."""
    w, h = image.size
    cw, ch = round(w * CROP_SHARE), round(h * CROP_SHARE)
    left, top = (w - cw) // 2, (h - ch) // 2
    return image.crop((left, top, left + cw, top + ch))


def _noise(images_BHW3: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = images_BHW3.astype(np.float64) + rng.normal(0.0, NOISE_SIGMA * 255.0, images_BHW3.shape)
    return noisy.round().clip(0, 255).astype(np.uint8)


ATTACKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "clean": lambda x: x,
    "jpeg75": lambda x: _pil_map(x, _jpeg),
    "resize0.5": lambda x: _pil_map(x, _resize),
    "crop0.75": lambda x: _pil_map(x, _crop),
    "noise0.05": _noise,
}


def attack(images_BHW3: np.ndarray, name: str) -> np.ndarray:
    """uint8 (B, H, W, 3) images after attack `name` (one of ATTACKS; crop returns smaller images)."""
    return ATTACKS[name](images_BHW3)


def _batches(pipe: Any, images_BHW3: np.ndarray, batch: int = 100) -> list[torch.Tensor]:
    """uint8 images in batches of (b, 3, size, size) in [-1, 1] on the pipe's device."""
    return [prepare_images(torch.from_numpy(np.ascontiguousarray(images_BHW3[i : i + batch])), pipe.height)
            .to(pipe.device) for i in range(0, len(images_BHW3), batch)]  # fmt: skip


def max_scores(pipe: Any, images_BHW3: np.ndarray, watermark: Watermark, batch: int = 100) -> np.ndarray:
    """The detector's z (max over the pool) of each uint8 image (B,), re-tokenised at the model's size."""
    vae = detection_tokenizer(pipe)
    reads = [vae.encode(x) for x in _batches(pipe, images_BHW3, batch)]
    return _z(reads, vae, watermark)


def _z(reads: list[list[torch.Tensor]], vae: Any, watermark: Watermark) -> np.ndarray:
    """Max-over-the-pool z (B,) of batches of per-scale indices."""
    return np.concatenate([token_scores(r, vae.quantize, watermark).max(dim=1).values.cpu().numpy() for r in reads])


def _inverted(pipe: Any, images_BHW3: np.ndarray) -> tuple[list[list[torch.Tensor]], dict[str, float]]:
    """Decoder-inversion read-back of uint8 images, batch by batch, with seconds per image and mean PSNR."""
    reads, stats = [], []
    for x in _batches(pipe, images_BHW3):
        indices, info = inversion_read(detection_tokenizer(pipe), x)
        reads.append(indices)
        stats.append((info, x.shape[0]))
    n = sum(b for _, b in stats)
    return reads, {key: sum(info[key] * b for info, b in stats) / n for key in ("seconds_per_image", "psnr_db")}


def detection_rates(marked_B: np.ndarray, plain_B: np.ndarray, analytic: float, fpr: float) -> dict[str, Any]:
    """True-positive rates of watermarked z-scores at the empirical threshold (the (1 - fpr) quantile of the
    unwatermarked z-scores, strictly exceeded) and at the analytic one, with the false-positive rate of each."""
    empirical = float(np.quantile(plain_B, 1.0 - fpr, method="higher"))
    return {
        "empirical_threshold": empirical,
        "detection_at_empirical": float(np.mean(marked_B > empirical)),
        "fpr_at_empirical": float(np.mean(plain_B > empirical)),
        "detection_at_analytic": float(np.mean(marked_B > analytic)),
        "fpr_at_analytic": float(np.mean(plain_B > analytic)),
        "z_marked_median": float(np.median(marked_B)),
        "z_plain_median": float(np.median(plain_B)),
    }


def _sample(
    pipe: Any, labels: list[int], watermark: Watermark | None, seed: int, batch: int
) -> tuple[np.ndarray, list[torch.Tensor], float]:
    """uint8 images (N, H, W, 3), their sampled tokens per scale (N, l) and the wall seconds of sampling them."""
    start, images, tokens = time.perf_counter(), [], []
    generator = pipe.make_generator(seed)
    for i in range(0, len(labels), batch):
        part = labels[i : i + batch]
        result = pipe.generate(part, num_images=len(part), generator=generator, watermark=watermark)
        images.append(result.images)
        tokens.append(result.tokens)
    per_scale = [torch.cat([t[k] for t in tokens]) for k in range(len(tokens[0]))]
    return np.concatenate(images), per_scale, time.perf_counter() - start


@torch.no_grad()
def tokens_kept(pipe: Any, images_BHW3: np.ndarray, tokens: list[torch.Tensor], groups: int) -> dict[str, list[float]]:
    """Per scale, the share of sampled codes, and of their code groups, that re-tokenising the images gives back:
    what a token watermark can hope to find again."""
    vae = detection_tokenizer(pipe)
    read = vae.encode(prepare_images(torch.from_numpy(images_BHW3), pipe.height).to(pipe.device))
    return kept_rates(tokens, read, code_groups(vae.quantize.embedding.weight, groups).to(pipe.device))


def _other_detectors(pipe: Any, marked: np.ndarray, marked_tokens: list[torch.Tensor], plain_reads: dict[str, Any],
                     wm: Watermark, threshold: float, fpr: float) -> dict[str, Any]:  # fmt: skip
    """The exact-latent ceiling (kept codes and groups) and decoder inversion (kept, detection rates per attack,
    seconds per image) for one watermark; `plain_reads` caches the unwatermarked inversions across modes."""
    vae = detection_tokenizer(pipe)
    groups = code_groups(vae.quantize.embedding.weight, wm.groups).to(pipe.device)
    tokens = [t.to(pipe.device) for t in marked_tokens]
    inversion: dict[str, Any] = {"steps": INVERSION_STEPS, "attacks": {}}
    for name in INVERSION_ATTACKS:
        reads, info = _inverted(pipe, attack(marked, name))
        if name not in plain_reads:
            plain_reads[name] = _inverted(pipe, attack(plain_reads["images"], name))[0]
        rates = detection_rates(_z(reads, vae, wm), _z(plain_reads[name], vae, wm), threshold, fpr)
        inversion["attacks"][name] = rates | {k: round(v, 4) for k, v in info.items()}
        if name == "clean":
            inversion["kept"] = kept_rates(tokens, [torch.cat(s) for s in zip(*reads, strict=True)], groups)
    return {"kept_exact_latent": kept_rates(tokens, exact_latent_read(vae, tokens), groups),
            "decoder_inversion": inversion}  # fmt: skip


@torch.no_grad()
def _decoder_psnr(pipe: Any, images_BHW3: np.ndarray, tokens: list[torch.Tensor]) -> float | None:
    """PSNR (dB, uint8) of watermarked images against the model's own decoding of their tokens: what decoding with
    the watermark tokenizer changes (None when they are the same images: the checkpoint ships no such tokenizer)."""
    from genmotion.metrics import psnr
    from genmotion.pipeline import to_uint8

    vae = pipe.model.vae
    plain = to_uint8(vae.fhat_to_image(vae.indices_to_fhat([t.to(pipe.device) for t in tokens])))
    value = psnr(images_BHW3.astype(np.float64), plain.astype(np.float64), data_range=255.0)
    return None if math.isinf(value) else value


def watermark_robustness(pipe: Any, num_images: int, *, modes: tuple[str, ...] = ("soft", "hard"), fpr: float = 0.01,
                         seed: int = 0, batch: int = 50, model: str = "var-toy") -> dict[str, Any]:  # fmt: skip
    """`num_images` unwatermarked images and as many watermarked per mode (classes in turn, one seed for all
    sets): per mode the detection rates per attack at `fpr`, the tokens re-tokenising gives back (and those the
    exact latent and decoder inversion give back, with inversion's detection rates), and the class accuracy of
    every set (rows of the variants table)."""
    from genmotion.image_core.bench_run import table_row

    labels = [i % pipe.num_classes for i in range(num_images)]
    tokens = sum(p * p for p in pipe.config.var.patch_nums)
    plain, plain_tokens, plain_s = _sample(pipe, labels, None, seed, batch)
    rows = [table_row(model, "no watermark", labels, plain, tokens=tokens, seconds=plain_s)]
    groups = Watermark(BENCH_KEY).groups
    out: dict[str, Any] = {"images": num_images, "false_positive_rate": fpr,
                           "kept_unwatermarked": tokens_kept(pipe, plain, plain_tokens, groups)}  # fmt: skip
    plain_reads: dict[str, Any] = {"images": plain}
    for mode in modes:
        wm = Watermark(BENCH_KEY, mode=mode)  # type: ignore[arg-type]
        marked, marked_tokens, marked_s = _sample(pipe, labels, wm, seed, batch)
        analytic = z_threshold(fpr, wm.pool_size, watermark_tokens(wm, pipe.config.var.patch_nums), wm.green_share)
        attacks = {}
        for name in ATTACKS:
            z_marked = max_scores(pipe, attack(marked, name), wm)
            z_plain = max_scores(pipe, attack(plain, name), wm)
            attacks[name] = detection_rates(z_marked, z_plain, analytic, fpr)
        setting = f"LBW {mode}" + (f" delta {wm.delta:g}" if mode == "soft" else "")
        rows.append(table_row(model, setting, labels, marked, tokens=tokens, seconds=marked_s))
        z_sampled = token_scores(marked_tokens, pipe.model.vae.quantize, wm).max(dim=1).values
        fidelity = _decoder_psnr(pipe, marked, marked_tokens)
        out[mode] = {
            "gamma": wm.green_share, "delta": wm.delta if mode == "soft" else None, "groups": wm.groups,
            "pool_size": wm.pool_size, "scales": list(wm.scale_indices(len(pipe.config.var.patch_nums))),
            "analytic_threshold": analytic, "attacks": attacks,
            "z_sampled_tokens_median": float(z_sampled.median()), "psnr_to_model_decoder_db": fidelity,
            "kept": tokens_kept(pipe, marked, marked_tokens, wm.groups),
            "class_accuracy": rows[-1]["class_accuracy"], "class_accuracy_unwatermarked": rows[0]["class_accuracy"],
        } | _other_detectors(pipe, marked, marked_tokens, plain_reads, wm, analytic, fpr)  # fmt: skip
    out["rows"] = rows
    return out
