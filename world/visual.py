"""Pictures of world-model outputs: segmentation, depth and normals coloured, RGB | seg | depth | normals
side by side per frame, with a red marker on forecast frames, and frame strips for docs and benches.

Axes: T frames, H x W pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["colour_depth", "colour_normals", "colour_segmentation", "labelled_grid", "panel", "side_by_side"]

_CLASS_COLOURS = np.array([[120, 170, 230], [110, 110, 100], [230, 80, 60], [250, 200, 40]], dtype=np.uint8)


def colour_segmentation(classes_THW: np.ndarray) -> np.ndarray:
    """Class ids (..., H, W) -> uint8 (..., H, W, 3): sky blue, ground grey, spheres red, boxes yellow."""
    return _CLASS_COLOURS[np.clip(classes_THW, 0, len(_CLASS_COLOURS) - 1)]


def colour_depth(depth_THW: np.ndarray, near: float = 0.5, far: float = 40.0) -> np.ndarray:
    """Depth -> uint8 (..., H, W, 3): log inverse depth, near warm, far dark blue."""
    u = (np.log(far) - np.log(np.clip(depth_THW, near, far))) / (np.log(far) - np.log(near))
    r, g, b = np.clip(1.5 * u - 0.2, 0, 1), np.clip(1.6 * u * (1.1 - u) + 0.1, 0, 1), np.clip(0.9 - 0.9 * u, 0, 1)
    return (np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)


def colour_normals(normals_THW3: np.ndarray) -> np.ndarray:
    """Unit normals -> uint8 RGB (n + 1) / 2; zero vectors (sky) stay black."""
    return ((np.clip(normals_THW3, -1, 1) + 1) * 127.5 * (np.abs(normals_THW3).sum(-1, keepdims=True) > 0.1)).astype(
        np.uint8
    )


def panel(rgb: np.ndarray, seg: np.ndarray, depth: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(T, H, W, ...) outputs -> (T, H, 4 W, 3) RGB | segmentation | depth | normals (black where the
    segmentation says sky, as in the ground truth)."""
    normals = np.where((seg == 0)[..., None], 0.0, normals)
    return np.concatenate([rgb, colour_segmentation(seg), colour_depth(depth), colour_normals(normals)], axis=2)


def side_by_side(context: np.ndarray, forecast: np.ndarray, *, scale: int = 2, border: int = 2) -> np.ndarray:
    """Context panels and forecast panels (T, H, 4 W, 3) -> one video (T, scale (H + 2 b), scale 4 W, 3):
    a grey bar above context frames, a red bar (and red frame edges) above forecast frames."""
    frames = []
    for i, p in enumerate(np.concatenate([context, forecast])):
        future = i >= len(context)
        bar = np.zeros((2 * border, p.shape[1], 3), dtype=np.uint8)
        bar[:] = (220, 30, 30) if future else (90, 90, 90)
        f = np.concatenate([bar, p.copy()], axis=0)
        if future:
            f[:, :border], f[:, -border:] = (220, 30, 30), (220, 30, 30)
        frames.append(f)
    video = np.stack(frames)
    return video.repeat(scale, axis=1).repeat(scale, axis=2)


def labelled_grid(rows: list[tuple[str, np.ndarray]], *, context: int, scale: int = 2, label_width: int = 150) -> Any:
    """Rows of frames (T, H, W, 3) uint8 -> a PIL image: a label per row, a red line before frame `context`."""
    from PIL import Image, ImageDraw

    T, H, W = rows[0][1].shape[:3]
    gap = 4
    img = Image.new("RGB", (label_width + T * W * scale + gap, len(rows) * (H * scale + 2) + 16), "white")
    draw = ImageDraw.Draw(img)
    draw.text((label_width, 2), "context", fill="black")
    draw.text((label_width + context * W * scale + gap, 2), "forecast ->", fill=(200, 20, 20))
    for r, (label, frames) in enumerate(rows):
        y = 16 + r * (H * scale + 2)
        draw.text((4, y + H * scale // 2 - 6), label, fill="black")
        for t in range(frames.shape[0]):
            x = label_width + t * W * scale + (gap if t >= context else 0)
            tile = Image.fromarray(frames[t]).resize((W * scale, H * scale), Image.Resampling.NEAREST)
            img.paste(tile, (x, y))
    x = label_width + context * W * scale + gap // 2 - 1
    draw.line([(x, 14), (x, img.height)], fill=(220, 30, 30), width=2)
    return img
