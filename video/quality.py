"""How toy-world clips look, measured as a person would judge them: per-frame object statistics (area
variation over a clip, connected pieces per frame, background change per frame, sharpness) and the toy-world
FVD (Fréchet distance of the toy world's own video classifier's features, after Unterthiner et al. 2018).

Clips are uint8 (T, H, W, 3); a set of clips is a list of them or (N, T, H, W, 3). Statistics need the
colour of the one object the prompt asks for (its palette colour marks the object's pixels).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import linalg, ndimage

__all__ = [
    "ClipStatistics",
    "background_change",
    "clip_statistics",
    "frame_change",
    "frechet_distance",
    "object_mask",
    "pieces",
    "set_statistics",
    "sharpness",
]

_RATIO = 0.8  # an object pixel is this much nearer its palette colour than any background colour
_MIN_PIECE = 2  # pixels: a lone pixel is anti-aliasing or speckle, not a piece a person would count


def _colour_table() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from genmotion.data.toyworld import COLOURS, PALETTE
    from genmotion.data.toyworld.vocab import BACKGROUND_COLOURS

    palette = np.array([PALETTE[c] for c in COLOURS], dtype=np.float32)  # (8, 3)
    backgrounds = np.array([c for pair in BACKGROUND_COLOURS.values() for c in pair], dtype=np.float32)
    return palette, backgrounds, COLOURS


def object_mask(frames_THW3: np.ndarray, colour: str) -> np.ndarray:
    """bool (T, H, W): pixels whose nearest palette colour is `colour` and that are clearly nearer it
    (distance ratio 0.8) than every background colour of the world."""
    palette, backgrounds, names = _colour_table()
    x = frames_THW3.astype(np.float32)[..., None, :]  # (T, H, W, 1, 3)
    to_palette = np.linalg.norm(x - palette, axis=-1)  # (T, H, W, 8)
    to_background = np.linalg.norm(x - backgrounds, axis=-1).min(-1)  # (T, H, W)
    k = names.index(colour)
    return (to_palette.argmin(-1) == k) & (to_palette[..., k] < _RATIO * to_background)


def pieces(mask_HW: np.ndarray) -> int:
    """Connected pieces (8-neighbours, >= 2 pixels) of one frame's mask; the frame wraps round (a toy object
    crossing an edge is drawn on both sides and is one piece)."""
    labels, count = ndimage.label(mask_HW, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return 0
    parent = list(range(count + 1))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a_side, b_side in ((labels[0], labels[-1]), (labels[:, 0], labels[:, -1])):  # opposite edges touch
        for shift in (-1, 0, 1):
            for a, b in zip(a_side, np.roll(b_side, shift), strict=True):
                if a and b:
                    parent[root(int(a))] = root(int(b))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    merged: dict[int, int] = {}
    for label in range(1, count + 1):
        merged[root(label)] = merged.get(root(label), 0) + int(sizes[label])
    return sum(1 for size in merged.values() if size >= _MIN_PIECE)


def background_change(frames_THW3: np.ndarray, mask_THW: np.ndarray) -> float:
    """Mean |frame_t+1 - frame_t| (0-255, over RGB) on pixels that are background in both frames, where the
    object mask is grown by one pixel so the object's moving outline is not counted."""
    if frames_THW3.shape[0] < 2:
        return 0.0
    grown = ndimage.binary_dilation(mask_THW, structure=np.ones((1, 3, 3), dtype=bool))
    keep = ~(grown[1:] | grown[:-1])  # (T-1, H, W)
    diff = np.abs(frames_THW3[1:].astype(np.float32) - frames_THW3[:-1].astype(np.float32)).mean(-1)
    return float(diff[keep].mean()) if keep.any() else 0.0


def frame_change(frames_THW3: np.ndarray) -> float:
    """Mean |frame_t+1 - frame_t| (0-255, over RGB) over every pixel; 0 for a single frame."""
    if frames_THW3.shape[0] < 2:
        return 0.0
    return float(np.abs(np.diff(frames_THW3.astype(np.float32), axis=0)).mean())


def sharpness(frames_THW3: np.ndarray) -> float:
    """Edge energy: the root mean square of the luminance gradient (0-255 per pixel, forward differences)."""
    y = frames_THW3.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # (T, H, W)
    gx, gy = np.diff(y, axis=2), np.diff(y, axis=1)
    return float(np.sqrt((np.square(gx).mean() + np.square(gy).mean()) / 2))


@dataclass(frozen=True)
class ClipStatistics:
    """One clip: area variation (std/mean of the object's pixels over frames; 1 when it is never drawn),
    mean pieces per frame, background change per frame (0-255), frame change (the same over every pixel,
    the object's motion included), sharpness, and per-frame pieces/areas."""

    area_variation: float
    pieces: float
    background_change: float
    frame_change: float
    sharpness: float
    pieces_per_frame: tuple[int, ...]
    area_per_frame: tuple[int, ...]


def clip_statistics(frames_THW3: np.ndarray, colour: str) -> ClipStatistics:
    """The object statistics of one clip whose one object should be `colour`."""
    mask = object_mask(frames_THW3, colour)
    area = mask.sum(axis=(1, 2))
    variation = float(area.std() / area.mean()) if area.mean() > 0 else 1.0
    counts = tuple(pieces(m) for m in mask)
    return ClipStatistics(
        area_variation=variation,
        pieces=float(np.mean(counts)),
        background_change=background_change(frames_THW3, mask),
        frame_change=frame_change(frames_THW3),
        sharpness=sharpness(frames_THW3),
        pieces_per_frame=counts,
        area_per_frame=tuple(int(a) for a in area),
    )


def set_statistics(clips: Sequence[np.ndarray] | np.ndarray, colours: Sequence[str]) -> dict[str, float]:
    """Means over a set of clips of the `ClipStatistics` scalars, plus `missing`, the share of frames in
    which no piece of the object's colour is drawn."""
    stats = [clip_statistics(np.asarray(c), colour) for c, colour in zip(clips, colours, strict=True)]
    out = {k: float(np.mean([getattr(s, k) for s in stats])) for k in _SCALARS}
    out["missing"] = float(np.mean([p == 0 for s in stats for p in s.pieces_per_frame]))
    return out


_SCALARS = ("area_variation", "pieces", "background_change", "frame_change", "sharpness")


def frechet_distance(a_NF: np.ndarray, b_NF: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets: |mu_a - mu_b|^2 +
    tr(S_a + S_b - 2 (S_a S_b)^1/2) (float64; the imaginary round-off of the matrix root is dropped)."""
    a, b = np.asarray(a_NF, np.float64), np.asarray(b_NF, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # fewer clips than features: the product is singular; its root still is
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root: Any = linalg.sqrtm(s_a @ s_b)
    if not np.isfinite(root).all():  # near-singular product: regularise as the reference FID code does
        eps = 1e-6 * np.eye(a.shape[1])
        root = linalg.sqrtm((s_a + eps) @ (s_b + eps))
    trace = np.trace(s_a) + np.trace(s_b) - 2.0 * float(np.trace(np.real(root)))
    return float(np.square(mu_a - mu_b).sum() + trace)
