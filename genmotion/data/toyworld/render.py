"""The batched, vectorised 2-D renderer of toy clips: backgrounds, object trajectories, anti-aliased
shapes and per-object masks, all in torch.

How motion continues for any number of frames (so every 16-frame window of a 256-frame clip still shows
its motion):
* left/right/up/down move at constant speed on a torus: the part of the object that leaves one edge
  re-enters at the opposite edge (drawn split across both edges while it crosses), so the object never
  turns round and never disappears.
* bounce: the object hops along the bottom of the frame (|sin| arcs, one hop every `period` frames,
  9-13 < 16) while drifting left or right at constant speed, wrapping horizontally like the above.
* grow/shrink: the half-extent changes geometrically by `GROWTH_RANGE` over one cycle (28-36 frames),
  then restarts (a grown object pops back to its smallest scale), so scale changes one way on all
  frames but one per cycle.
* still: never moves.

Axes: B clips, K objects per clip (padded), T frames, H x W pixels. Positions are pixel units inside
the renderer; specs hold frame fractions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from genmotion.data.toyworld.spec import MAX_OBJECTS, ClipSpec, ObjectSpec
from genmotion.data.toyworld.vocab import (
    BACKGROUND_COLOURS,
    BOUNCE_HEIGHT,
    CHECKER_CELLS,
    GROWTH_RANGE,
    PALETTE,
    SHAPES,
    SIZE_FRACTION,
    Background,
    check_name,
)
from genmotion.errors import UsageError

__all__ = [
    "SHAPE_FILL",
    "ObjectTracks",
    "RenderedClips",
    "object_tracks",
    "render_background",
    "render_clips",
    "shape_coverage",
]

SHAPE_FILL = {"circle": math.pi / 4, "square": 1.0, "triangle": 0.5}  # area / bounding-box area
_DIRECTION = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
_CHUNK_ELEMENTS = 1 << 22  # B*K*t*H*W per rendering chunk: bounds peak memory at ~150 MB


class RenderedClips(NamedTuple):
    """frames: uint8 (B, T, H, W, 3); masks: uint8 (B, T, H, W), 0 = background, k + 1 = object k
    (where objects overlap, the one drawn last, i.e. the higher k, wins)."""

    frames: torch.Tensor
    masks: torch.Tensor


class ObjectTracks(NamedTuple):
    """Per-object ground truth in pixels: centre_x, centre_y, half (half-extent of the bounding box),
    each float32 (B, K, T); present: bool (B, K), False for the padding of one-object clips."""

    centre_x: torch.Tensor
    centre_y: torch.Tensor
    half: torch.Tensor
    present: torch.Tensor


def render_background(background: Background, height: int, width: int) -> torch.Tensor:
    """The background image as float32 (H, W, 3) in [0, 255]."""
    check_name("background", background, tuple(BACKGROUND_COLOURS))
    first, second = (torch.tensor(c, dtype=torch.float32) for c in BACKGROUND_COLOURS[background])
    if background == "gradient sky":
        w = ((torch.arange(height, dtype=torch.float32) + 0.5) / height)[:, None, None]  # (H, 1, 1)
        return (first + w * (second - first)).expand(height, width, 3).contiguous()
    if background == "checker floor":
        cell = min(height, width) / CHECKER_CELLS
        ys = torch.div(torch.arange(height), cell, rounding_mode="floor")
        xs = torch.div(torch.arange(width), cell, rounding_mode="floor")
        odd = ((ys[:, None] + xs[None, :]) % 2).bool()[..., None]  # (H, W, 1)
        return torch.where(odd, second, first)
    return first.expand(height, width, 3).contiguous()


_PADDING = {
    "shape": 0.0,
    "size": 0.0,
    "x0": 0.5,
    "y0": 0.5,
    "vx": 0.0,
    "vy": 0.0,
    "period": 1.0,
    "phase": 0.0,
    "bounce": 0.0,
    "grow": 0.0,
    "shrink": 0.0,
    "present": 0.0,
    "red": 0.0,
    "green": 0.0,
    "blue": 0.0,
}


def _object_row(o: ObjectSpec) -> dict[str, float]:
    dx, dy = _DIRECTION.get(o.motion, (0.0, 0.0))
    if o.motion == "bounce":
        dx = -1.0 if o.heading == "left" else 1.0
    red, green, blue = PALETTE[o.colour]
    return {
        "shape": float(SHAPES.index(o.shape)),
        "size": SIZE_FRACTION[o.size],
        "x0": o.start[0],
        "y0": o.start[1],
        "vx": dx * o.speed,
        "vy": dy * o.speed,
        "period": o.period,
        "phase": o.phase,
        "bounce": float(o.motion == "bounce"),
        "grow": float(o.motion == "grow"),
        "shrink": float(o.motion == "shrink"),
        "present": 1.0,
        "red": float(red),
        "green": float(green),
        "blue": float(blue),
    }


def _object_table(specs: Sequence[ClipSpec]) -> dict[str, torch.Tensor]:
    """Per-object parameters as float32 (B, K) tensors, plus "colour" (B, K, 3); K = MAX_OBJECTS."""
    rows = [[_object_row(o) for o in s.objects] + [_PADDING] * (MAX_OBJECTS - len(s.objects)) for s in specs]
    table = {key: torch.tensor([[r[key] for r in row] for row in rows]) for key in _PADDING}
    table["colour"] = torch.stack([table.pop("red"), table.pop("green"), table.pop("blue")], dim=-1)
    return table


def _tracks(table: dict[str, torch.Tensor], times: torch.Tensor, height: int, width: int) -> ObjectTracks:
    """Centres and half-extents (B, K, T) in pixels at the given frame times (T,)."""
    t = times[None, None, :]  # (1, 1, T)
    p = {k: v[..., None] for k, v in table.items() if k != "colour"}  # (B, K, 1)
    cycle = torch.remainder(p["phase"] + t / p["period"], 1.0)  # (B, K, T) in [0, 1)
    log_lo, log_hi = math.log(GROWTH_RANGE[0]), math.log(GROWTH_RANGE[1])
    log_scale = p["grow"] * (log_lo + (log_hi - log_lo) * cycle)
    log_scale = log_scale + p["shrink"] * (log_hi - (log_hi - log_lo) * cycle)
    half = p["size"] * min(height, width) * torch.exp(log_scale)  # (B, K, T)

    x = torch.remainder(p["x0"] + p["vx"] * t, 1.0) * width
    y = torch.remainder(p["y0"] + p["vy"] * t, 1.0) * height
    floor = height - half  # a hop lands with the object's bottom on the frame's bottom edge
    hop = torch.clamp(torch.full_like(half, BOUNCE_HEIGHT * height), max=height - 2 * half)
    y_bounce = floor - hop * torch.sin(math.pi * cycle).abs()
    y = torch.where(p["bounce"] > 0, y_bounce, y)
    present = table["present"] > 0
    return ObjectTracks(x, y, half, present)


def object_tracks(
    specs: Sequence[ClipSpec], num_frames: int, height: int, width: int, start_frame: int = 0
) -> ObjectTracks:
    """Ground-truth centres and half-extents (pixels) of every object on frames start_frame ... + num_frames - 1."""
    times = torch.arange(start_frame, start_frame + num_frames, dtype=torch.float32)
    return _tracks(_object_table(specs), times, height, width)


def shape_coverage(shape: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """Anti-aliased coverage in [0, 1]: 0.5 minus the signed distance (pixels) to the shape's outline.

    shape: (N,) index into SHAPES (-1: nothing); half: (N,); dx: (N, W) and dy: (N, H), the pixel
    offsets from the bounding-box centre -> (N, H, W). Each row is computed for its own shape only.
    The triangle points up: apex (0, -half), base corners (+-half, half): it fills half its bounding box.
    """
    n, h, w = dx.shape[0], dy.shape[1], dx.shape[1]
    out = torch.zeros(n, h, w)  # rows of absent (padding) objects have shape -1 and stay empty
    inner = (half + 0.5)[:, None]  # (N, 1)
    for index, name in enumerate(SHAPES):
        rows = (shape == index).nonzero().squeeze(1)
        if rows.numel() == 0:
            continue
        x, y, r = dx[rows], dy[rows], inner[rows]
        if name == "circle":
            cover = r[..., None] - torch.sqrt(x.square()[:, None, :] + y.square()[:, :, None])
        elif name == "square":
            cover = torch.minimum((r - x.abs())[:, None, :], (r - y.abs())[:, :, None])
        else:  # inside the base (y <= half) and between the two slanted sides (2|x| <= y + half)
            slant = (r - 0.5 - 2 * x.abs())[:, None, :] / math.sqrt(5.0) + (0.5 + y / math.sqrt(5.0))[:, :, None]
            cover = torch.minimum((r - y)[:, :, None], slant)
        out[rows] = cover.clamp_(0.0, 1.0)
    return out


def render_clips(
    specs: Sequence[ClipSpec], num_frames: int, height: int, width: int, *, start_frame: int = 0
) -> RenderedClips:
    """Render clips: frames uint8 (B, T, H, W, 3) and masks uint8 (B, T, H, W).

    Frames start_frame ... start_frame + num_frames - 1 of each clip are drawn (any window of an
    endless clip). Deterministic: a spec fixes its pixels. Work is chunked over frames so memory stays
    bounded for long or large clips.
    """
    if not specs:
        raise UsageError("render_clips got no specs", fix="pass at least one ClipSpec")
    if num_frames < 1 or height < 4 or width < 4:
        raise UsageError(
            f"cannot render {num_frames} frames of {height}x{width}",
            fix="use num_frames >= 1 and height, width >= 4 (32-256 px is the intended range)",
        )
    table = _object_table(specs)
    b, k = table["present"].shape
    backgrounds = {name: render_background(name, height, width) for name in {s.background for s in specs}}
    bg = torch.stack([backgrounds[s.background] for s in specs]).permute(3, 0, 1, 2)[:, :, None]  # (3, B, 1, H, W)
    colour = table["colour"].permute(2, 0, 1)[..., None, None, None]  # (3, B, K, 1, 1, 1)
    px = torch.arange(width, dtype=torch.float32) + 0.5
    py = torch.arange(height, dtype=torch.float32) + 0.5
    frames = torch.empty(b, num_frames, height, width, 3, dtype=torch.uint8)
    masks = torch.empty(b, num_frames, height, width, dtype=torch.uint8)
    chunk = max(1, _CHUNK_ELEMENTS // (b * k * height * width))
    for t0 in range(0, num_frames, chunk):
        times = torch.arange(start_frame + t0, start_frame + min(t0 + chunk, num_frames), dtype=torch.float32)
        cx, cy, half, present = _tracks(table, times, height, width)  # (B, K, t)
        # nearest periodic image of each pixel: objects crossing an edge are drawn on both sides
        dx = torch.remainder(px - cx[..., None] + width / 2, width) - width / 2  # (B, K, t, W)
        dy = torch.remainder(py - cy[..., None] + height / 2, height) - height / 2  # (B, K, t, H)
        shape = torch.where(present, table["shape"], -1.0)[:, :, None].expand_as(half)
        cover = shape_coverage(shape.flatten(), dx.flatten(0, 2), dy.flatten(0, 2), half.flatten())
        cover = cover.view(b, k, len(times), height, width)  # (B, K, t, H, W)
        image = bg.expand(3, b, len(times), height, width).clone()  # channel-first: per-channel ops stay contiguous
        mask = torch.zeros(b, len(times), height, width, dtype=torch.uint8)
        for j in range(k):  # "over" compositing, later objects on top
            alpha = cover[:, j]  # (B, t, H, W)
            keep = 1.0 - alpha
            for c in range(3):
                image[c].mul_(keep).add_(alpha * colour[c, :, j])
            mask = torch.where(alpha >= 0.5, j + 1, mask).to(torch.uint8)
        frames[:, t0 : t0 + len(times)] = image.round_().permute(1, 2, 3, 4, 0)
        masks[:, t0 : t0 + len(times)] = mask
    return RenderedClips(frames, masks)
