"""Read a toy clip back from its pixels: which objects (colour, shape, size, motion) over which
background, and how well frames follow a prompt (`score_adherence`). Works on generated frames too.

Method, per frame and vectorised in torch (no learned parts):
1. Each pixel is labelled with its nearest palette colour if that is clearly nearer (ratio test) than
   every background colour of the world; else background. Backgrounds are muted and the palette
   saturated, so noise, blur and colour drift rarely flip a label; isolated pixels are dropped.
2. An object is a palette colour with enough pixels, some of them interior (not a blur fringe);
   a colour mostly hugging a bigger object is a colour-shifted part of it and is merged.
3. Centres and areas come from soft coverage (where a pixel's colour lies between the background's
   and the object's), so they change smoothly, not in whole pixels. Centres are circular means
   (objects wrap around the frame edges), so an object drawn split across an edge reads as one.
4. Shape: the ideal circle, square and triangle of the object's area, placed at its centre of mass,
   are drawn and compared by IoU with its mask; the best wins (blur and speckle lower all three
   alike). Size from the winner's extent.
5. Motion from per-frame centre steps and log-area steps, by medians, so the wrap of a moving object
   or the restart of a growth cycle (one step in a window) does not change the answer. Frames where
   an object touches another and its outline stops fitting its shape (it is occluded) are skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from genmotion.data.toyworld.captions import ObjectQuery, PromptSpec, parse_prompt
from genmotion.data.toyworld.render import SHAPE_FILL, render_background, shape_coverage
from genmotion.data.toyworld.vocab import (
    BACKGROUND_COLOURS,
    BACKGROUNDS,
    COLOURS,
    PALETTE,
    SHAPES,
    SIZE_THRESHOLD,
    Background,
    Colour,
    Heading,
    Motion,
    Shape,
    Size,
)
from genmotion.errors import InputError, UsageError

__all__ = ["DetectedObject", "Detection", "detect", "score_adherence"]

_RATIO = 0.8  # a pixel is an object pixel when its palette distance < _RATIO * its background distance
_STILL_SPEED = 0.012  # frame fractions per frame; directional motions move >= 0.03
_STEP = 0.025  # a vertical step this large counts towards a hop (centroid noise stays below it)
_OCCLUDED_FIT = 0.08  # a touching frame whose shape IoU drops this much below usual is occluded
_GROWTH = 0.015  # |median log-area change| per frame that counts as grow/shrink (renders: ~0.05)


@dataclass(frozen=True)
class DetectedObject:
    """One object read from frames. pixels: mean area per frame; shape_scores: mean IoU with the ideal
    circle, square, triangle of the same area and centre; extent: half the side of that shape's box
    / min(H, W); velocity: median (dx, dy) per frame in frame fractions (y down); growth: median
    change of log area per frame."""

    colour: Colour
    shape: Shape
    size: Size
    motion: Motion
    heading: Heading | None
    pixels: float
    shape_scores: tuple[float, float, float]
    extent: float
    velocity: tuple[float, float]
    growth: float


@dataclass(frozen=True)
class Detection:
    """Objects (largest first) and the background of a clip."""

    objects: tuple[DetectedObject, ...]
    background: Background


@lru_cache(maxsize=1)
def _label_table() -> torch.Tensor:
    """int8 (32768,): the label of every RGB cell of side 8 (palette index, or -1 for background),
    decided at the cell centre against the palette and the world's background colours (gradients
    sampled every 1/16). Looking labels up costs one gather per pixel."""
    palette = torch.tensor([PALETTE[c] for c in COLOURS], dtype=torch.float32)
    steps = torch.linspace(0, 1, 17)[:, None]
    backgrounds = []
    for first, second in BACKGROUND_COLOURS.values():
        a, b = torch.tensor(first, dtype=torch.float32), torch.tensor(second, dtype=torch.float32)
        backgrounds.append(a + steps * (b - a) if first != second else a[None])
    levels = torch.arange(4, 256, 8, dtype=torch.float32)
    cells = torch.cartesian_prod(levels, levels, levels)  # (32768, 3), red-major
    d_palette, index = torch.cdist(cells, palette).min(dim=1)
    d_background = torch.cdist(cells, torch.cat(backgrounds)).min(dim=1).values
    return torch.where(d_palette < _RATIO * d_background, index, -1).to(torch.int8)


def _as_frames(frames: Any) -> torch.Tensor:
    """uint8 (T, H, W, 3) or (H, W, 3), numpy or torch -> uint8 (T, H, W, 3)."""
    x = torch.as_tensor(frames)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3 or x.shape[0] == 0:
        raise InputError(
            f"frames must have shape (T, H, W, 3), got {tuple(x.shape)}",
            why="the detector reads channel-last RGB clips",
            fix="pass uint8 frames (T, H, W, 3); permute channel-first tensors with x.permute(0, 2, 3, 1)",
        )
    if x.dtype != torch.uint8:
        raise InputError(f"frames must be uint8 in [0, 255], got {x.dtype}", fix="convert with x.to(torch.uint8)")
    return x.cpu()


def _labels(x: torch.Tensor) -> torch.Tensor:
    """Palette index per pixel, -1 for background: uint8 (T, H, W, 3) -> int8 (T, H, W)."""
    cell = (x >> 3).long()
    labels = _label_table()[(cell[..., 0] << 10) | (cell[..., 1] << 5) | cell[..., 2]]
    return torch.where(_same_neighbours(labels) > 0, labels, -1)  # drop isolated pixels (noise)


def _same_neighbours(labels: torch.Tensor) -> torch.Tensor:
    """How many of the 4 neighbours (torus) carry the same label: (T, H, W) -> (T, H, W)."""
    same = (labels == torch.roll(labels, 1, 1)).to(torch.uint8)
    for shift, dim in ((-1, 1), (1, 2), (-1, 2)):
        same += labels == torch.roll(labels, shift, dim)
    return same


def _dilate(mask: torch.Tensor) -> torch.Tensor:
    """3 x 3 dilation of a bool mask (T, H, W) on the torus."""
    near = mask | torch.roll(mask, 1, 1) | torch.roll(mask, -1, 1)
    return near | torch.roll(near, 1, 2) | torch.roll(near, -1, 2)


def _object_masks(labels: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """(palette index, bool mask (T, H, W)) per object, largest first."""
    t, h, w = labels.shape
    interior = _same_neighbours(labels) == 4
    counts = torch.bincount(labels.flatten().long() + 1, minlength=len(COLOURS) + 1)[1:]
    inner = torch.bincount(labels[interior].long() + 1, minlength=len(COLOURS) + 1)[1:]
    min_pixels = max(4.0, 0.002 * h * w)
    found: list[tuple[int, torch.Tensor]] = []
    for c in counts.argsort(descending=True).tolist():
        total = float(counts[c])
        if total / t < min_pixels or float(inner[c]) < 0.1 * total:  # too few, or only a blur fringe
            continue
        mask = labels == c
        for _, bigger in found:  # a colour-shifted part of a bigger object, hugging it, joins it
            if float((mask & _dilate(bigger)).sum()) > 0.5 * total:
                bigger |= mask
                break
        else:
            found.append((c, mask))
    return found


def _centres(weights: torch.Tensor, dim: int) -> torch.Tensor:
    """Centre of mass (pixels, in [0, n)) along one image axis per frame, circular so that an object
    split across the frame edge is measured whole. weights (T, H, W); dim 1 = y (rows), 2 = x (columns)."""
    n = weights.shape[dim]
    lines = weights.sum(dim=3 - dim).float()  # (T, n): mass per row (dim=1) or column (dim=2)
    coords = torch.arange(n, dtype=torch.float32) + 0.5
    angle = 2 * math.pi * coords / n
    first = torch.remainder(torch.atan2(lines @ torch.sin(angle), lines @ torch.cos(angle)) * n / (2 * math.pi), n)
    offsets = torch.remainder(coords - first[:, None] + n / 2, n) - n / 2  # (T, n), unwrapped around it
    return torch.remainder(first + (lines * offsets).sum(1) / lines.sum(1).clamp(min=1), n)


def _shape_scores(mask: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU (T, 3) of the mask (T, H, W) with each ideal shape of the same area and centre of mass,
    and the half-extents (T, 3) of those shapes in pixels."""
    t, h, w = mask.shape
    area = mask.sum((1, 2)).float()
    fill = torch.tensor([SHAPE_FILL[s] for s in SHAPES])
    half = (area[:, None] / fill).sqrt() / 2  # (T, 3)
    # the triangle's centre of mass lies half/3 below its box centre
    box_y = cy[:, None] - torch.tensor([0.0, 0.0, 1 / 3]) * half
    dx = torch.remainder(torch.arange(w) + 0.5 - cx[:, None] + w / 2, w) - w / 2  # (T, W)
    dy = torch.remainder(torch.arange(h) + 0.5 - box_y[..., None] + h / 2, h) - h / 2  # (T, 3, H)
    shapes = torch.arange(len(SHAPES), dtype=torch.float32).repeat(t)
    ideal = shape_coverage(shapes, dx.repeat_interleave(len(SHAPES), 0), dy.flatten(0, 1), half.flatten()) >= 0.5
    ideal = ideal.view(t, len(SHAPES), h, w)
    inter = (ideal & mask[:, None]).sum((2, 3)).float()
    union = (ideal | mask[:, None]).sum((2, 3)).float()
    return inter / union.clamp(min=1), half


def _median(x: torch.Tensor, default: float = 0.0) -> float:
    return float(x.median()) if x.numel() else default


def _classify_motion(
    times: torch.Tensor, centre_x: torch.Tensor, centre_y: torch.Tensor, pixels: torch.Tensor, height: int, width: int
) -> tuple[Motion, Heading | None, tuple[float, float], float]:
    """Motion from the frames where the object is seen clearly: their times, centres (pixels) and
    pixel counts, each (T',)."""
    if len(pixels) < 2:
        return "still", None, (0.0, 0.0), 0.0

    def rate(values: torch.Tensor, lag: int, period: float = 0.0) -> torch.Tensor:  # per frame, across gaps
        change = values[lag:] - values[:-lag]
        if period:  # positions wrap around the frame: take the short way, in frame fractions
            change = (torch.remainder(change + period / 2, period) - period / 2) / period
        return change / (times[lag:] - times[:-lag])

    # Masks change in whole pixels, so a growing square's centre jitters by half a pixel per frame:
    # "is it moving" and "does it grow" compare frames a few apart; direction and hops use single steps.
    lag = max(1, min(4, (len(pixels) - 1) // 3))
    dx, dy = rate(centre_x, 1, width), rate(centre_y, 1, height)
    growth = _median(rate(pixels.log(), lag))
    velocity = (_median(dx), _median(dy))
    heading: Heading | None = None
    if abs(velocity[0]) > _STILL_SPEED / 2:
        heading = "left" if velocity[0] < 0 else "right"
    if _median(torch.hypot(rate(centre_x, lag, width), rate(centre_y, lag, height))) < _STILL_SPEED:
        motion: Motion = "grow" if growth > _GROWTH else "shrink" if growth < -_GROWTH else "still"
        return motion, None, velocity, growth
    rising, falling = int((dy < -_STEP).sum()), int((dy > _STEP).sum())
    if min(rising, falling) >= 2:  # up and down within the window: hops
        return "bounce", heading, velocity, growth
    if _median(dx.abs()) >= _median(dy.abs()):
        return ("left" if velocity[0] < 0 else "right"), heading, velocity, growth
    return ("up" if velocity[1] < 0 else "down"), heading, velocity, growth


def _read_object(colour: int, mask: torch.Tensor, coverage: torch.Tensor, touching: torch.Tensor) -> DetectedObject:
    """Describe one object from its mask (T, H, W) and soft coverage (T, H, W). touching (T,) marks
    frames where it meets another object; of those, frames where its outline fits its shape worse
    than usual (it is occluded) are left out, when at least 4 frames remain."""
    _, h, w = mask.shape
    pixels = mask.sum((1, 2)).float()  # (T,)
    seen = pixels >= 3
    if not bool(seen.any()):
        seen = pixels > 0
    cx, cy = _centres(coverage, 2), _centres(coverage, 1)
    iou, half = _shape_scores(mask[seen], cx[seen], cy[seen])  # (T', 3)
    clear = ~touching[seen]
    if int(clear.sum()) < 2:
        clear = torch.ones_like(clear)
    big = clear & (pixels[seen] >= _median(pixels[seen][clear]))  # shape reads best on the larger frames
    scores = iou[big].mean(0)
    best = int(scores.argmax())
    fit = iou[:, best]
    keep = clear | (fit >= _median(fit[clear]) - _OCCLUDED_FIT)
    if int(keep.sum()) < 4:
        keep = torch.ones_like(keep)
    extent = _median(half[keep, best]) / min(h, w)
    times = torch.arange(len(pixels), dtype=torch.float32)[seen][keep]
    cx, cy = cx[seen][keep], cy[seen][keep]
    area = coverage.sum((1, 2)).clamp(min=1.0)[seen][keep]
    motion, heading, velocity, growth = _classify_motion(times, cx, cy, area, h, w)
    return DetectedObject(
        colour=COLOURS[colour],
        shape=SHAPES[best],
        size="small" if extent < SIZE_THRESHOLD else "large",
        motion=motion,
        heading=heading,
        pixels=float(pixels.mean()),
        shape_scores=(float(scores[0]), float(scores[1]), float(scores[2])),
        extent=extent,
        velocity=velocity,
        growth=growth,
    )


@lru_cache(maxsize=8)
def _known_backgrounds(height: int, width: int) -> torch.Tensor:
    """Every background of the world at one size: float (len(BACKGROUNDS), H, W, 3); do not modify."""
    return torch.stack([render_background(b, height, width) for b in BACKGROUNDS])


def _read_background(x: torch.Tensor, labels: torch.Tensor) -> tuple[Background, torch.Tensor]:
    """The known background nearest to the clip's mean background (object pixels and their blurred
    edges left out), and the background image float (H, W, 3): that mean where a pixel shows
    background on most frames, else the known background."""
    t, h, w = labels.shape
    free = ~_dilate(_dilate(labels >= 0))  # (T, H, W)
    count = free.sum(0)  # (H, W)
    mean = (x * free[..., None]).sum(0) / count.clamp(min=1)[..., None]  # (H, W, 3)
    mostly = count * 2 >= t
    if not bool(mostly.any()):
        mostly, mean = torch.ones_like(mostly), x.float().mean(0)
    known = _known_backgrounds(h, w)
    errors = (mean - known).abs().sum(-1)[:, mostly].mean(-1)  # (len(BACKGROUNDS),)
    best = int(errors.argmin())
    return BACKGROUNDS[best], torch.where(mostly[..., None], mean, known[best])


def _soft_coverage(x: torch.Tensor, region: torch.Tensor, colour: int, background: torch.Tensor) -> torch.Tensor:
    """How much of each pixel the object covers, from where its colour lies between the background's
    and the object's: float (T, H, W) in [0, 1], zero outside `region` (T, H, W). Sub-pixel: a slowly
    growing object gains coverage every frame, where its mask gains whole pixels only now and then."""
    towards = torch.tensor(PALETTE[COLOURS[colour]], dtype=torch.float32) - background  # (H, W, 3)
    alpha = ((x.float() - background) * towards).sum(-1) / towards.square().sum(-1).clamp(min=1.0)
    return alpha.clamp(0.0, 1.0) * region


def detect(frames: Any) -> Detection:
    """Objects and background of a clip: uint8 frames (T, H, W, 3) or (H, W, 3), numpy or torch."""
    x = _as_frames(frames)
    labels = _labels(x)
    background, image = _read_background(x, labels)
    found = _object_masks(labels)
    everything = torch.zeros_like(labels, dtype=torch.bool)
    for _, mask in found:
        everything |= mask
    objects = []
    for c, mask in found:  # masks are disjoint, so `everything & ~mask` is the other objects
        others = everything & ~mask
        near = _dilate(mask)
        coverage = _soft_coverage(x, near & ~others, c, image)
        objects.append(_read_object(c, mask, coverage, (near & others).flatten(1).any(1)))
    return Detection(objects=tuple(objects), background=background)


def _matches(query: ObjectQuery, found: DetectedObject | None) -> dict[str, bool]:
    result: dict[str, bool] = {}
    for attribute in ("colour", "shape", "size", "motion"):
        wanted = getattr(query, attribute)
        if wanted is not None:
            result[attribute] = found is not None and getattr(found, attribute) == wanted
    if query.heading is not None:
        result["motion"] = result.get("motion", True) and found is not None and found.heading == query.heading
    return result


def score_adherence(frames: Any, prompt: str | PromptSpec) -> dict[str, bool]:
    """Whether frames show what the prompt says: a bool per attribute the prompt names ("colour",
    "shape", "size", "motion" (incl. a bounce's drift), "background"), "count" for two-object prompts,
    and "all" (every named attribute right). Objects are matched by colour, else largest first; for
    two objects each attribute must hold for both.
    """
    query = parse_prompt(prompt) if isinstance(prompt, str) else prompt
    if query.is_empty:
        raise UsageError(
            f"cannot score adherence to {prompt!r}: it names nothing the toy world knows",
            fix="use a prompt naming a colour, shape, size, motion or background",
        )
    detection = detect(frames)
    left = list(detection.objects)
    result: dict[str, bool] = {}
    for q in query.objects:
        found = next((o for o in left if o.colour == q.colour), None) if q.colour else None
        if found is None and left:  # no colour named, or none of it: score the largest object left
            found = left[0]
        if found is not None:
            left.remove(found)
        for attribute, ok in _matches(q, found).items():
            result[attribute] = result.get(attribute, True) and ok
    if len(query.objects) > 1:
        result["count"] = len(detection.objects) >= len(query.objects)
    if query.background is not None:
        result["background"] = detection.background == query.background
    result["all"] = all(result.values()) and bool(detection.objects or not query.objects)
    return result
