"""TTS-VAR: test-time scaling for VAR, a search over the coarse-to-fine process (Chen et al., 2025, "TTS-VAR: A
Test-Time Scaling Framework for Visual Auto-Regressive Generation").

Scale 0 starts N candidates (rows of one batch); later scales keep fewer rows (`candidate_schedule`; by default
N // 4 rows reach the end, see `default_min_rows`). At every scale boundary where the row count drops, the
intermediate images (f_hat so far, decoded) choose which rows go on:
* the first `coarse` (2) drops keep diversity: k-means over a pluggable feature of every candidate's image, with
  k = the next row count, keeping the candidate nearest each centroid (`kmeans_select`);
* later drops resample by potential: a pluggable scorer (images -> one float each), weights exp(lambda * score)
  with lambda = 10, rows drawn by multinomial with replacement (`resample_rows`).
Kept rows carry everything that is per row: the KV cache of every layer (keys, values, positions), the
accumulated f_hat and the next scale's input, the class conditions (with the guidance null rows, which sit at
row + N when guidance doubles the batch) and the candidate ancestry (`ScaleSearch.keep`). The result is the best
final row by the scorer, every final row, and which scale-0 candidates survived. Randomness comes only from the
generator passed in (sampling, k-means initialisation, resampling), so a seed repeats a search.

Axes: N candidates (rows), l tokens of one scale, V vocabulary, Cv latent channels, H/W finest latent or image
size, F feature size, K scales.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genmotion.errors import UsageError
from genmotion.image_core.config import VARSamplingConfig
from genmotion.image_core.var_model import VAR, ClassConditions
from genmotion.kv.buffers import KVCache
from genmotion.kv.layered import LayeredKVCache
from genmotion.nn.quantizer import MultiScaleQuantizer
from genmotion.pipeline import to_uint8
from genmotion.sampling.guidance import guidance_schedule, guide
from genmotion.sampling.logits import Sampler

__all__ = [
    "OFFICIAL_SCHEDULE",
    "ScaleSearch",
    "TTSResult",
    "candidate_schedule",
    "check_schedule",
    "default_min_rows",
    "downsampled_features",
    "kmeans_select",
    "resample_rows",
    "resample_weights",
    "selection_plan",
    "toy_class_scorer",
    "tts_generate",
]

OFFICIAL_SCHEDULE = (8, 8, 6, 6, 6, 4, 2, 2, 2, 1, 1, 1, 1)  # TTS-VAR's rows per scale for 13 scales, N = 8
LAMBDA = 10.0
ImageScorer = Callable[[torch.Tensor], torch.Tensor]
"""images (N, 3, H, W) in [0, 1] -> scores (N,) float, higher is better."""
FeatureFn = Callable[[torch.Tensor], torch.Tensor]
"""images (N, 3, H, W) in [0, 1] -> features (N, F) compared by Euclidean distance."""


# ---- the candidate schedule -----------------------------------------------------------------------
def candidate_schedule(candidates: int, num_scales: int, min_rows: int = 1) -> tuple[int, ...]:
    """Rows per scale, descending from `candidates`: the official 13-scale schedule stretched over `num_scales`.

    Rule: scale k of K takes the official fraction of N at official scale j = round(k * 12 / (K - 1)), the
    fractions being 8,8,6,6,6,4,2,2,2,1,1,1,1 / 8; rows = max(min_rows, round(N * fraction)) (halves round up).
    For K = 13, N = 8 and min_rows = 1 this is the official schedule; var-toy (K = 6) with N = 8 gets 8, 6, 4, 2,
    1, 1, and with `default_min_rows(8)` = 2 (what `tts_generate` uses) 8, 6, 4, 2, 2, 2.
    """
    if candidates < 1 or num_scales < 1:
        raise UsageError(f"TTS needs at least one candidate and one scale, got {candidates} and {num_scales}")
    last = len(OFFICIAL_SCHEDULE) - 1
    out = []
    for k in range(num_scales):
        j = math.floor(k * last / (num_scales - 1) + 0.5) if num_scales > 1 else 0
        share = candidates * OFFICIAL_SCHEDULE[j] / OFFICIAL_SCHEDULE[0]
        out.append(min(candidates, max(min_rows, 1, math.floor(share + 0.5))))
    return tuple(out)


def default_min_rows(candidates: int) -> int:
    """Rows kept to the end by default: N // 4 (at least 1), so the scorer picks the best of several finished images.

    A deliberate change from the official end at one row: there the last scales refine texture of a 64x64-token
    image; var-toy's last two scales are 100 of its 130 tokens and still decide the shape. On var-toy (96 prompts,
    N = 8) ending at one row gained little or nothing at guidance 1 and 2 (87.5 -> 85.4 %, 92.7 -> 93.8 %), ending
    at two rows 8.3 and 7.3 points.
    """
    return max(1, candidates // 4)


def check_schedule(schedule: Sequence[int], num_scales: int) -> tuple[int, ...]:
    """An explicit schedule, checked: one positive row count per scale, never growing."""
    rows = tuple(int(r) for r in schedule)
    example = candidate_schedule(8, num_scales, default_min_rows(8))
    fix = f"give {num_scales} counts that never grow, e.g. {','.join(map(str, example))}"
    if len(rows) != num_scales:
        raise UsageError(f"TTS schedule {list(rows)} has {len(rows)} entries for {num_scales} scales", fix=fix)
    if min(rows) < 1 or any(b > a for a, b in zip(rows, rows[1:], strict=False)):
        raise UsageError(f"TTS schedule {list(rows)} must be positive and never grow", fix=fix)
    return rows


def selection_plan(schedule: Sequence[int], coarse: int = 2) -> dict[int, str]:
    """{scale k: "cluster" | "resample"}: the selection made after scale k, where rows drop from k to k + 1; the
    first `coarse` drops cluster, the rest resample (for the official schedule: cluster after scales 1 and 4,
    resample after 5 and 8)."""
    drops = [k for k in range(len(schedule) - 1) if schedule[k + 1] < schedule[k]]
    return {k: "cluster" if i < coarse else "resample" for i, k in enumerate(drops)}


# ---- selection ------------------------------------------------------------------------------------
def downsampled_features(images_N3HW: torch.Tensor, size: int = 8) -> torch.Tensor:
    """The default feature: each image area-downsampled to size x size, flattened (N, 3 * size * size)."""
    side = min(size, images_N3HW.shape[-1])
    return F.interpolate(images_N3HW.float(), size=(side, side), mode="area").flatten(1)


def kmeans_select(features_NF: torch.Tensor, k: int, generator: torch.Generator, iterations: int = 20) -> torch.Tensor:
    """(k,) distinct row indices: k-means (k-means++ start drawn from `generator`, Lloyd steps), then per centroid
    the nearest candidate not kept yet (centroids in order), so duplicates of one image cannot fill two slots."""
    x = features_NF.float().cpu()
    N = x.shape[0]
    if not 1 <= k <= N:
        raise UsageError(f"cannot keep {k} of {N} candidates by clustering")
    draw = torch.rand(k, generator=generator, device=generator.device).cpu()
    first = min(int(draw[0] * N), N - 1)
    centres = x[first : first + 1]
    for i in range(1, k):  # k-means++: the next centre with probability proportional to the squared distance
        d2 = torch.cdist(x, centres).min(dim=1).values.square()
        cdf = d2.cumsum(0)
        pick = int(torch.searchsorted(cdf, draw[i] * cdf[-1]).clamp(max=N - 1)) if float(cdf[-1]) > 0 else i % N
        centres = torch.cat([centres, x[pick : pick + 1]])
    for _ in range(iterations):
        assign = torch.cdist(x, centres).argmin(dim=1)
        moved = torch.stack([x[assign == c].mean(0) if bool((assign == c).any()) else centres[c] for c in range(k)])
        if torch.equal(moved, centres):
            break
        centres = moved
    distance = torch.cdist(centres, x)  # k, N
    kept: list[int] = []
    for c in range(k):
        order = distance[c].argsort(stable=True).tolist()
        kept.append(next(i for i in order if i not in kept))
    return torch.tensor(kept, dtype=torch.long)


def resample_weights(scores_N: torch.Tensor, lam: float = LAMBDA) -> torch.Tensor:
    """(N,) exp(lam * score), normalised (computed as a softmax, so large scores do not overflow)."""
    return torch.softmax(lam * scores_N.double(), dim=0).float()


def resample_rows(scores_N: torch.Tensor, m: int, generator: torch.Generator, lam: float = LAMBDA) -> torch.Tensor:
    """(m,) row indices drawn with replacement with probabilities `resample_weights(scores, lam)`."""
    weights = resample_weights(scores_N, lam).to(generator.device)
    return torch.multinomial(weights, m, replacement=True, generator=generator).cpu()


def toy_class_scorer(class_name: str) -> ImageScorer:
    """The toy-world detector's agreement with `class_name` ("<colour> <shape>"), in [0, 1] per image: of its
    largest object, 0.5 for the colour, 0.25 for the shape read, 0.25 x the IoU with the requested shape."""
    from genmotion.data.toyworld.detector import detect
    from genmotion.data.toyworld.vocab import COLOURS, SHAPES

    colour, _, shape = class_name.partition(" ")
    if colour not in COLOURS or shape not in SHAPES:
        raise UsageError(f"no toy-world scorer for class {class_name!r}", fix="pass scorer=<images -> scores>")

    def score(images_N3HW: torch.Tensor) -> torch.Tensor:
        pixels = images_N3HW.float().mul(255).round().clamp(0, 255).to(torch.uint8).movedim(1, -1).cpu()
        out = []
        for image in pixels:
            objects = detect(image).objects
            if not objects:
                out.append(0.0)
                continue
            o = objects[0]
            iou = o.shape_scores[SHAPES.index(shape)]  # type: ignore[arg-type]
            out.append(0.5 * (o.colour == colour) + 0.25 * (o.shape == shape) + 0.25 * float(iou))
        return torch.tensor(out)

    return score


# ---- re-indexing what is per row ------------------------------------------------------------------
def _select_layer(layer: KVCache, rows: torch.Tensor) -> KVCache:
    """A linear `KVCache` holding `layer`'s entries of `rows` (in that order, repeats allowed)."""
    if layer.ring:
        raise UsageError("TTS re-indexes linear KV caches only", fix="use the full cache (kv='full')")
    out = KVCache(len(rows), layer.heads, layer.capacity, layer.head_dim, dtype=layer.k.dtype, device=layer.k.device)
    if layer.length:
        positions = layer.rope_positions  # (1, 1, L) while shared by every row, else (B, H, L)
        positions = positions if positions.shape[0] == 1 else positions[rows]
        out.append(layer.keys[rows], layer.values[rows], positions)
    return out


def select_cache_rows(cache: LayeredKVCache, rows: torch.Tensor) -> LayeredKVCache:
    """Every layer's keys, values and positions of `rows` (R,): a new cache of R rows, the same length."""
    for layer in cache:
        if not isinstance(layer, KVCache):
            raise UsageError(
                f"TTS re-indexes per-layer KV caches only, not {type(layer).__name__}", fix="use kv='full' with TTS"
            )
    index = rows.to(device=cache[0].k.device, dtype=torch.long)
    return LayeredKVCache([_select_layer(layer, index) for layer in cache], commit=cache.commit)


def select_condition_rows(conditions: ClassConditions, rows: torch.Tensor) -> ClassConditions:
    """The class embedding and every AdaLN vector of `rows`."""
    index = rows.to(device=conditions.cond_BD.device, dtype=torch.long)
    return ClassConditions(
        cond_BD=conditions.cond_BD[index],
        blocks=tuple(tuple(t[index] for t in block) for block in conditions.blocks),
        head=(conditions.head[0][index], conditions.head[1][index]),
    )


class ScaleSearch:
    """One VAR sampling run over scales whose rows can be kept, dropped or repeated between scales.

    `logits()` runs the next scale (2N rows with guidance: N conditional then N null-class rows, else N) against
    the cache; `add(tokens (N, l))` adds that scale's codes to f_hat (N, Cv, H, W); `keep(rows (R,))` re-indexes
    the cache, the conditions (row r and its null row r + N), f_hat, the next input and `ancestry` (R,), the
    scale-0 candidate every row descends from. Inputs and positions are those of `stream_scales`.
    """

    def __init__(self, var: VAR, quantizer: MultiScaleQuantizer, labels_N: torch.Tensor, *, guided: bool) -> None:
        self.var, self.quantizer, self.guided = var, quantizer, guided
        labels = torch.cat((labels_N, torch.full_like(labels_N, var.num_classes))) if guided else labels_N
        self.conditions = var.class_conditions(labels)
        like = self.conditions.cond_BD
        self.rows, self.scale, self.position = labels_N.shape[0], 0, 0
        self.cache = var.new_cache(labels.shape[0], dtype=like.dtype, device=like.device)
        H = var.patch_nums[-1]
        self.f_hat = torch.zeros(self.rows, var.Cvae, H, H, device=like.device)
        self.next_map = self.f_hat
        self.ancestry = torch.arange(self.rows)

    def logits(self) -> torch.Tensor:
        """The next scale's logits (2N or N, l, V); its keys and values are appended to the cache."""
        var, cond = self.var, self.conditions.cond_BD
        if self.scale == 0:
            x = var.start_tokens(cond)
        else:
            x = var.scale_tokens(self.scale, self.next_map.view(self.rows, var.Cvae, -1).transpose(1, 2)).to(cond.dtype)
            x = x.repeat(2, 1, 1) if self.guided else x
        positions = torch.arange(self.position, self.position + x.shape[1], device=cond.device)
        self.position += x.shape[1]
        return var.forward_scale(x, self.conditions, self.cache, positions_l=positions)

    def add(self, tokens_Nl: torch.Tensor) -> None:
        """This scale's sampled codes into f_hat; the next scale's input follows from it."""
        pn, Cv = self.var.patch_nums[self.scale], self.var.Cvae
        h = self.quantizer.embedding(tokens_Nl).transpose(1, 2).reshape(self.rows, Cv, pn, pn)
        self.f_hat, self.next_map = self.quantizer.next_autoregressive_input(self.scale, self.f_hat, h)
        self.scale += 1

    def keep(self, rows: torch.Tensor) -> None:
        """Go on with `rows` (R,) of the current N, in that order (repeats allowed)."""
        index = rows.to(device=self.f_hat.device, dtype=torch.long)
        if index.ndim != 1 or not len(index) or int(index.min()) < 0 or int(index.max()) >= self.rows:
            raise UsageError(f"cannot keep rows {rows.tolist()} of {self.rows}")
        both = torch.cat((index, index + self.rows)) if self.guided else index
        self.cache = select_cache_rows(self.cache, both)
        self.conditions = select_condition_rows(self.conditions, both)
        self.f_hat, self.next_map = self.f_hat[index], self.next_map[index]
        self.ancestry = self.ancestry[index.cpu()]
        self.rows = len(index)


# ---- the search -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TTSResult:
    """A TTS-VAR run: the best final row `image` uint8 (H, W, 3), every final row `images` (R, H, W, 3) with its
    `scores` (R,) (empty when one row and no scorer), `best` its row, `survivors` (R,) the scale-0 candidate each
    final row descends from, `selections` [(scale k, kind, rows kept (int list))] in order, `schedule`, the
    transformer rows run per scale (`row_scales` = sum of the schedule, x 2 with guidance), the intermediate
    images decoded for selection (`decoded`) and the wall `seconds`."""

    image: np.ndarray
    images: np.ndarray
    scores: torch.Tensor
    best: int
    label: int
    survivors: torch.Tensor
    selections: tuple[tuple[int, str, tuple[int, ...]], ...]
    schedule: tuple[int, ...]
    row_scales: int
    decoded: int
    seconds: float


def _scorer_for(pipe: Any, label: int, scorer: ImageScorer | None) -> ImageScorer | None:
    """The scorer given, else the toy-world one of this class name, else None (only a run that needs it fails)."""
    if scorer is not None:
        return scorer
    name = pipe.class_names[label] if label < len(pipe.class_names) else str(label)
    try:
        return toy_class_scorer(name)
    except UsageError:
        return None


def _need(scorer: ImageScorer | None, label: int) -> ImageScorer:
    if scorer is None:
        raise UsageError(
            f"TTS needs a scorer for class {label}: it is no toy-world class",
            fix="pass scorer=<callable: images (N, 3, H, W) in [0, 1] -> scores (N,)>",
        )
    return scorer


def _select(state: ScaleSearch, kind: str, rows: int, images: torch.Tensor, tools: dict[str, Any]) -> torch.Tensor:
    """The rows kept after one scale: k-means over the features, or potential resampling by the scorer."""
    if kind == "cluster":
        return kmeans_select(tools["features"](images), rows, tools["generator"])
    scores = _need(tools["scorer"], tools["label"])(images).float().flatten()
    return resample_rows(scores, rows, tools["generator"], tools["lam"])


def tts_generate(
    pipe: Any,
    class_label: int | str,
    *,
    candidates: int | None = None,
    schedule: Sequence[int] | None = None,
    scorer: ImageScorer | None = None,
    features: FeatureFn | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    lam: float = LAMBDA,
    coarse: int = 2,
    guidance_scale: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    temperature: float | None = None,
    on_scale: Callable[[int], None] | None = None,
) -> TTSResult:
    """TTS-VAR for one class on a `VARPipeline`: `candidates` (8) rows at scale 0, `schedule` (default
    `candidate_schedule(candidates, K, default_min_rows(candidates))`; it fixes the candidates itself) rows per
    scale, selection by `selection_plan(schedule, coarse)`.

    `scorer` (default: the toy-world detector's agreement with the class name, `toy_class_scorer`) resamples
    the fine scales and picks the best final row; `features` (default `downsampled_features`) feeds k-means.
    Sampling settings left unset (guidance, top-k, top-p, temperature) are the checkpoint's. With one candidate
    no row is ever selected and the run equals `pipe.generate(class_label, seed=seed)` with the same settings.
    `on_scale(k)` is called after each scale (progress). The search runs the full KV cache and no logits
    processors (in-painting's token forcing is built for a fixed batch), so there is no other per-row state.
    """
    if getattr(pipe.config.var, "markov", False):
        raise UsageError(
            "TTS-VAR re-indexes VAR's KV cache; a scale-Markov model (HMAR, MVAR) keeps none", fix="drop --tts"
        )
    start = time.perf_counter()
    rows = _rows(candidates, schedule, len(pipe.config.var.patch_nums))
    label = pipe.class_id(class_label)
    settings = _settings(pipe.sampling, guidance_scale, top_k, top_p, temperature)
    tools: dict[str, Any] = {"features": features or downsampled_features, "scorer": _scorer_for(pipe, label, scorer)}
    tools.update(generator=pipe.make_generator(seed, generator), label=label, lam=lam)
    plan = selection_plan(rows, coarse)
    autocast = torch.autocast(pipe.device.type, dtype=pipe.compute_dtype, enabled=pipe.compute_dtype != torch.float32)
    with torch.no_grad(), autocast:
        state, picked = _search(pipe, rows, settings, plan, tools, on_scale)
        final = pipe.model.vae.fhat_to_image(state.f_hat).float()
    one = state.rows == 1 and tools["scorer"] is None
    scores = torch.empty(0) if one else _need(tools["scorer"], label)(final.add(1).mul(0.5)).float().flatten()
    best = int(scores.argmax()) if len(scores) else 0
    images = to_uint8(final)
    return TTSResult(
        image=images[best], images=images, scores=scores, best=best, label=label, survivors=state.ancestry,
        selections=tuple(picked), schedule=rows, row_scales=sum(rows) * (2 if state.guided else 1),
        decoded=sum(rows[k] for k in plan) + state.rows, seconds=time.perf_counter() - start,
    )  # fmt: skip


def _settings(s: VARSamplingConfig, guidance: float | None, top_k: int | None, top_p: float | None,
              temperature: float | None) -> VARSamplingConfig:  # fmt: skip
    try:
        return VARSamplingConfig(
            guidance_scale=s.guidance_scale if guidance is None else guidance,
            top_k=s.top_k if top_k is None else top_k,
            top_p=s.top_p if top_p is None else top_p,
            temperature=s.temperature if temperature is None else temperature,
        )
    except ValueError as e:
        raise UsageError("bad sampling settings", why=str(e), fix="e.g. guidance_scale=3, top_k=0, top_p=0") from e


def _rows(candidates: int | None, schedule: Sequence[int] | None, num_scales: int) -> tuple[int, ...]:
    if schedule is None:
        n = 8 if candidates is None else candidates
        return candidate_schedule(n, num_scales, default_min_rows(n))
    rows = check_schedule(schedule, num_scales)
    if candidates is not None and candidates != rows[0]:
        raise UsageError(
            f"TTS schedule {list(rows)} starts with {rows[0]} rows but {candidates} candidates were asked for",
            fix="pass the schedule alone (its first entry is the number of candidates)",
        )
    return rows


def _search(
    pipe: Any, rows: tuple[int, ...], s: VARSamplingConfig, plan: dict[int, str], tools: dict[str, Any],
    on_scale: Callable[[int], None] | None,
) -> tuple[ScaleSearch, list[tuple[int, str, tuple[int, ...]]]]:  # fmt: skip
    """The scales of one search: sample every row (the calls `stream_scales` makes), select where `plan` says."""
    var, vae, K = pipe.model.var, pipe.model.vae, len(rows)
    sampler = Sampler(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p)
    weights = guidance_schedule("linear", s.guidance_scale)
    labels = torch.full((rows[0],), tools["label"], dtype=torch.long, device=pipe.device)
    state, picked = ScaleSearch(var, vae.quantize, labels, guided=s.guidance_scale != 1.0), []
    for k in range(K):
        logits = state.logits()
        if state.guided:
            cond, uncond = logits.chunk(2, dim=0)
            logits = guide(cond, uncond, weights(k, K))
        state.add(sampler(logits, tools["generator"]))
        if k in plan:
            images = vae.fhat_to_image(state.f_hat).float().add(1).mul(0.5)
            kept = _select(state, plan[k], rows[k + 1], images, tools)
            state.keep(kept)
            picked.append((k, plan[k], tuple(int(i) for i in kept)))
        if on_scale is not None:
            on_scale(k)
    return state, picked
