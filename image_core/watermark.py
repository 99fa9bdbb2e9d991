"""LBW: lexical-bias watermarking of VAR images, applied while sampling and detected from pixels (Lexical Bias
Watermarking, arXiv 2506.01011).

Key: 16-64 hex digits. It names a pool of `pool_size` green lists. The codebook is split once into `groups`
code groups (k-means over the code embeddings, deterministic); a green list gives every token position of
every watermarked scale its own random `gamma` share of the groups. While sampling, each image takes one pool
entry (drawn with the seed of the sampling generator, not from its stream, so the scales before the first
watermarked one come out as in plain sampling) and its watermarked scales are pushed towards the green codes:
`soft` adds `delta` to their logits after guidance, `hard` samples green codes only. Detection re-tokenises the
image (encode -> multi-scale residual indices) with the checkpoint's watermark tokenizer where it ships one
(`genmotion.image_core.watermark_vae`: the encoder and decoder pair that also decodes the watermarked samples,
trained to give their codes back), else with the model's own, counts the tokens G of the
watermarked scales whose group is green at their position, and runs a one-sided z-test against every pool
entry, z = (|G| - gamma T) / sqrt(T gamma (1 - gamma)); the largest z is compared with the threshold of the
requested false-positive rate, Bonferroni-corrected for the pool size and exact for the binomial null (the
smallest green count whose binomial tail is within the rate, not the normal quantile).

Why positions and groups (this project's choice, the paper keys lists by code only): toy images repeat one
background code dozens of times, and under the null a repeated code is one draw, not many, so code-keyed
lists over all tokens make plain images "detected" far above the stated rate; a list per position makes every
token an independent draw (an exact binomial null for a random key). Groups because decode -> encode keeps a
code's group far more often than the code itself (var-toy, scales 2-6 of unwatermarked samples: 70-81 % of
groups kept, 13-29 % of codes).

Axes: B batch, P pool size, M code groups, V vocabulary, l tokens of one scale.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from genmotion.errors import UsageError
from genmotion.image_core.watermark_key import parse_key

__all__ = [
    "GAMMA",
    "Watermark",
    "WatermarkBias",
    "WatermarkDetection",
    "detect_watermark",
    "detection_tokenizer",
    "prepare_images",
    "binomial_tail",
    "code_groups",
    "critical_count",
    "green_groups",
    "parse_key",
    "token_scores",
    "watermark_scores",
    "watermark_tokens",
    "z_threshold",
]

GAMMA = 0.5  # green share of the code groups at every position
DELTA = 4.0  # soft mode: added to the green logits
GROUPS = 8  # code groups (k-means over the codebook): re-tokenising keeps a code's group far more often than the code
POOL_SIZE = 8
FINE_SCALES = 2  # watermark the last scales (most tokens; the coarse ones decide the class)
Mode = Literal["soft", "hard"]


@dataclass(frozen=True)
class Watermark:
    """A watermark: the key and how it is applied. Detection must use the same gamma, groups, scales and pool size.

    `scales`: indices into the model's scales (negative counts from the finest); default the last two.
    `gamma` is rounded to a whole number of the `groups` code groups (`green_share`).
    """

    key: str
    mode: Mode = "soft"
    delta: float = DELTA
    gamma: float = GAMMA
    groups: int = GROUPS
    scales: tuple[int, ...] = tuple(range(-FINE_SCALES, 0))
    pool_size: int = POOL_SIZE
    key_bytes: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key_bytes", parse_key(self.key))
        if self.mode not in ("soft", "hard"):
            raise UsageError(f"unknown watermark mode {self.mode!r}", fix="use soft or hard")
        if not 0.0 < self.gamma < 1.0 or self.groups < 2:
            raise UsageError(f"gamma must lie in (0, 1) and groups be >= 2, got {self.gamma} and {self.groups}")
        if self.mode == "soft" and not self.delta > 0:
            raise UsageError(f"delta must be > 0, got {self.delta}", fix="e.g. delta=4")
        if self.pool_size < 1 or not self.scales:
            raise UsageError("a watermark needs a pool of at least one list and at least one scale")

    @property
    def green_count(self) -> int:
        """Green groups at every position: round(gamma * groups), at least 1 and at most groups - 1."""
        return min(self.groups - 1, max(1, round(self.gamma * self.groups)))

    @property
    def green_share(self) -> float:
        """The gamma of the z-test: the exact green share green_count / groups."""
        return self.green_count / self.groups

    def scale_indices(self, num_scales: int) -> tuple[int, ...]:
        """The watermarked scales as indices in [0, num_scales), sorted."""
        out = sorted({s % num_scales for s in self.scales if -num_scales <= s < num_scales})
        if len(out) != len(set(self.scales)):
            raise UsageError(f"watermark scales {list(self.scales)} do not fit a model of {num_scales} scales")
        return tuple(out)

    def processor(self, quantizer: Any, num_images: int, generator: torch.Generator) -> WatermarkBias:
        """The logits processor of one sampling run of `num_images` with the tokenizer's `quantizer`
        (`MultiScaleQuantizer`), each image given a pool entry drawn with `generator`'s seed (its stream is left
        alone, so the sampling draws are those of plain sampling)."""
        patch_nums = quantizer.patch_nums
        scales = self.scale_indices(len(patch_nums))
        entries = torch.randint(
            self.pool_size, (num_images,), generator=torch.Generator().manual_seed(generator.initial_seed())
        )
        groups = code_groups(quantizer.embedding.weight, self.groups)
        return WatermarkBias(green_groups(self, patch_nums, scales), groups, entries, scales, self.mode, self.delta)


def code_groups(codebook_VC: torch.Tensor, groups: int, iterations: int = 50) -> torch.Tensor:
    """(V,) long: the group of every code, k-means over the code embeddings (V, C) into `groups` groups.

    Deterministic: float64 on the CPU, farthest-point start from code 0, a fixed number of Lloyd steps, so
    generation and detection on any machine agree for the same weights."""
    X = codebook_VC.detach().to("cpu", torch.float64)
    groups = min(groups, X.shape[0])
    picked = [0]
    distance = torch.cdist(X, X[:1]).squeeze(1)
    for _ in range(groups - 1):
        picked.append(int(distance.argmax()))
        distance = torch.minimum(distance, torch.cdist(X, X[picked[-1:]]).squeeze(1))
    centres = X[picked]
    for _ in range(iterations):
        assign = torch.cdist(X, centres).argmin(dim=1)
        centres = torch.stack([X[assign == m].mean(0) if bool((assign == m).any()) else centres[m]
                               for m in range(groups)])  # fmt: skip
    return torch.cdist(X, centres).argmin(dim=1)


def green_groups(watermark: Watermark, patch_nums: Sequence[int], scales: Sequence[int]) -> list[torch.Tensor]:
    """Per watermarked scale a (P, l, M) bool: per pool entry and token position, `green_count` of the M code
    groups, the lowest of M uniform draws. The draws come from a CPU generator seeded with BLAKE2b (keyed with
    the key) of "entry:scale", so the lists are the same on every machine and device."""
    M, count = watermark.groups, watermark.green_count
    out = []
    for scale in scales:
        tokens = patch_nums[scale] ** 2
        table = torch.zeros(watermark.pool_size, tokens, M, dtype=torch.bool)
        for p in range(watermark.pool_size):
            digest = hashlib.blake2b(f"{p}:{scale}".encode(), key=watermark.key_bytes, digest_size=8).digest()
            draws = torch.rand(tokens, M, generator=torch.Generator().manual_seed(int.from_bytes(digest) >> 1))
            table[p].scatter_(1, draws.argsort(dim=1)[:, :count], True)
        out.append(table)
    return out


class WatermarkBias:
    """Logits processor: at a watermarked scale, the codes of row b whose group is green at their position (for
    the row's pool entry) get +delta (soft), or are the only codes left (hard). Other scales pass untouched."""

    def __init__(self, tables: Sequence[torch.Tensor], groups_V: torch.Tensor, entries_B: torch.Tensor,
                 scales: Sequence[int], mode: Mode, delta: float) -> None:  # fmt: skip
        self.tables, self.groups_V, self.entries_B = list(tables), groups_V, entries_B
        self.mode, self.delta = mode, delta
        self.slot = {scale: s for s, scale in enumerate(scales)}

    def green_mask(self, step: int) -> torch.Tensor:
        """(B, l, V) bool: the green codes of every row and position at scale `step`."""
        table_Blm = self.tables[self.slot[step]][self.entries_B]
        return table_Blm[:, :, self.groups_V]

    def __call__(self, logits_BlV: torch.Tensor, step: int) -> torch.Tensor:
        if step not in self.slot:
            return logits_BlV
        if logits_BlV.shape[0] != len(self.entries_B):
            raise UsageError(
                f"the watermark was built for {len(self.entries_B)} images, the sampler makes {logits_BlV.shape[0]}"
            )
        green = self.green_mask(step).to(logits_BlV.device)
        if self.mode == "hard":
            return logits_BlV.masked_fill(~green, float("-inf"))
        return logits_BlV + self.delta * green.to(logits_BlV.dtype)


def binomial_tail(count: int, tokens: int, gamma: float) -> float:
    """P(Binomial(tokens, gamma) >= count), summed exactly in log space (float64)."""
    if count <= 0:
        return 1.0
    log_g, log_r, log_n = math.log(gamma), math.log1p(-gamma), math.lgamma(tokens + 1)
    terms = [log_n - math.lgamma(k + 1) - math.lgamma(tokens - k + 1) + k * log_g + (tokens - k) * log_r
             for k in range(count, tokens + 1)]  # fmt: skip
    if not terms:
        return 0.0
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def critical_count(false_positive_rate: float, pool_size: int, tokens: int, gamma: float) -> int:
    """The fewest green tokens G (of `tokens`) that count as watermarked: the smallest k with
    pool_size * P(Binomial(tokens, gamma) >= k) <= fpr (Bonferroni over the pool; tokens + 1 when none is)."""
    if not 0.0 < false_positive_rate < 1.0:
        raise UsageError(f"false-positive rate must lie in (0, 1), got {false_positive_rate}", fix="e.g. 0.01")
    k = math.floor(gamma * tokens)
    while k <= tokens and pool_size * binomial_tail(k, tokens, gamma) > false_positive_rate:
        k += 1
    return k


def z_threshold(false_positive_rate: float, pool_size: int, tokens: int, gamma: float = GAMMA) -> float:
    """The z above which an image counts as watermarked, exact for the binomial null: half a token below the
    `critical_count`, so z > threshold <=> G >= critical count, and the chance that any of the P lists of an
    unwatermarked image passes stays <= fpr for every token count. (The normal quantile Phi^-1(1 - fpr/P) does
    not: at 28 tokens it lets through 1.5 times the stated rate.)"""
    k = critical_count(false_positive_rate, pool_size, tokens, gamma)
    return (k - 0.5 - gamma * tokens) / math.sqrt(tokens * gamma * (1 - gamma))


def watermark_tokens(watermark: Watermark, patch_nums: Sequence[int]) -> int:
    """T: the tokens of the watermarked scales of a model with scales `patch_nums`."""
    return sum(patch_nums[k] ** 2 for k in watermark.scale_indices(len(patch_nums)))


def token_scores(indices: Sequence[torch.Tensor], quantizer: Any, watermark: Watermark) -> torch.Tensor:
    """z-score (B, P) of per-scale token indices (each (B, l), coarse to fine) against every pool entry: the
    tokens of the watermarked scales whose code group is green at their position, T = all those tokens."""
    patch_nums = quantizer.patch_nums
    scales = watermark.scale_indices(len(patch_nums))
    device = indices[0].device
    groups = code_groups(quantizer.embedding.weight, watermark.groups).to(device)
    hits = torch.zeros(indices[0].shape[0], watermark.pool_size, dtype=torch.float64, device=device)
    for table_Plm, scale in zip(green_groups(watermark, patch_nums, scales), scales, strict=True):
        g_Bl = groups[indices[scale]]
        positions = torch.arange(g_Bl.shape[1], device=device)
        hits += table_Plm.to(device)[:, positions[None, :], g_Bl].sum(-1).T  # table[p, i, g[b, i]]: (P, B, l)
    T, g = watermark_tokens(watermark, patch_nums), watermark.green_share
    return (hits - g * T) / math.sqrt(T * g * (1 - g))


@torch.no_grad()
def watermark_scores(vae: Any, images_B3HW: torch.Tensor, watermark: Watermark) -> torch.Tensor:
    """Re-tokenise images (B, 3, H, W) in [-1, 1] with the tokenizer `vae`: z-score per image and pool entry
    (B, P); an image's score is the max over its row."""
    return token_scores(vae.encode(images_B3HW), vae.quantize, watermark)


@dataclass(frozen=True)
class WatermarkDetection:
    """The verdict on one image: `z` the largest z-score over the pool (of entry `entry`, over `tokens` tokens),
    `threshold` for `false_positive_rate`, `detected` when z > threshold. `tokenizer`: "watermark" when the
    checkpoint's watermark tokenizer read the image, "model" when it ships none and the model's own did."""

    detected: bool
    z: float
    threshold: float
    false_positive_rate: float
    entry: int
    tokens: int
    pool_size: int
    tokenizer: Literal["watermark", "model"] = "watermark"

    def summary(self) -> str:
        verdict = "watermark found" if self.detected else "no watermark"
        return (f"z = {self.z:.2f} (threshold {self.threshold:.2f} at {self.false_positive_rate:.2%} false positives, "
                f"best of {self.pool_size} lists, {self.tokens} tokens): {verdict}")  # fmt: skip


def detect_watermark(pipe: Any, image: Any, key: str | Watermark, *, false_positive_rate: float = 0.01,
                     ) -> WatermarkDetection:  # fmt: skip
    """Is `image` (a path, PIL image or uint8 (H, W, 3) array, any size: resized to the model's) watermarked with
    `key` (or a `Watermark` with non-default gamma, groups, scales, pool size) by `pipe`'s model?"""
    from genmotion.image_core.editing import _as_array

    watermark = key if isinstance(key, Watermark) else Watermark(key)
    tokens = watermark_tokens(watermark, pipe.model.vae.patch_nums)
    threshold = z_threshold(false_positive_rate, watermark.pool_size, tokens, watermark.green_share)
    images = prepare_images(_as_array(image, "image")[None], pipe.height, pipe.device)
    vae = detection_tokenizer(pipe)
    z = watermark_scores(vae, images, watermark)[0]
    entry = int(z.argmax())
    return WatermarkDetection(
        detected=float(z[entry]) > threshold, z=float(z[entry]), threshold=threshold,
        false_positive_rate=false_positive_rate, entry=entry, tokens=tokens, pool_size=watermark.pool_size,
        tokenizer="model" if vae is pipe.model.vae else "watermark",
    )  # fmt: skip


def detection_tokenizer(pipe: Any) -> Any:
    """The tokenizer that re-tokenises images for detection: the checkpoint's watermark tokenizer (the pair that
    decoded the watermarked samples), else the model's own."""
    marked = pipe.watermark_tokenizer() if hasattr(pipe, "watermark_tokenizer") else None
    return pipe.model.vae if marked is None else marked


def prepare_images(images_BHW3: torch.Tensor, size: int, device: Any = "cpu") -> torch.Tensor:
    """uint8 (B, H, W, 3) images of any size -> (B, 3, size, size) in [-1, 1] (bicubic resize where needed)."""
    from genmotion.errors import InputError

    if images_BHW3.ndim != 4 or images_BHW3.shape[-1] != 3:
        raise InputError(f"expected RGB images (H, W, 3), got shape {tuple(images_BHW3.shape[1:])}")
    x = images_BHW3.permute(0, 3, 1, 2).float().div(255.0 if images_BHW3.dtype == torch.uint8 else 1.0)
    if tuple(x.shape[-2:]) != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    return x.clamp(0, 1).mul(2).sub(1).to(device)
