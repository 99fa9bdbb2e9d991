"""The rig preview a person checks in a second: the mesh from three views (front, side, top) with every
vertex coloured by its dominant bones' colours blended by weight, and the skeleton drawn over it
(bones as lines, joints as dots, the root larger). Orthographic point splatting with a depth buffer (PIL).

Axes: V vertices, J joints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genmotion.io.atomic import atomic_path
from genmotion.rigging.skeleton import Skeleton

__all__ = ["joint_colours", "render_preview"]

_VIEWS = (("front", (0, 1), 2), ("side", (2, 1), 0), ("top", (0, 2), 1))  # screen axes (x, y), depth axis


def joint_colours(num_joints: int) -> np.ndarray:
    """(J, 3) distinct bright colours in [0, 1] (golden-ratio hues)."""
    import colorsys

    hues = (np.arange(num_joints) * 0.618034) % 1.0
    return np.array([colorsys.hsv_to_rgb(h, 0.75, 0.95) for h in hues])


def _view(
    vertices: np.ndarray,
    colours: np.ndarray,
    skeleton: Skeleton,
    axes: tuple[int, int],
    depth: int,
    size: int,
    lo: np.ndarray,
    span: float,
) -> object:
    from PIL import Image, ImageDraw

    def screen(p: np.ndarray) -> np.ndarray:
        xy = (p[:, list(axes)] - lo[list(axes)]) / span
        return np.stack([xy[:, 0] * (size - 20) + 10, (1 - xy[:, 1]) * (size - 20) + 10], axis=1)

    img = np.full((size, size, 3), 245, dtype=np.uint8)
    zbuf = np.full((size, size), -np.inf)
    s = screen(vertices).round().astype(int)
    z = vertices[:, depth] * (1 if depth != 0 else -1)
    order = np.argsort(z)  # far to near; later writes win
    for dx in (0, 1):
        for dy in (0, 1):
            x, y = np.clip(s[order, 0] + dx, 0, size - 1), np.clip(s[order, 1] + dy, 0, size - 1)
            closer = z[order] >= zbuf[y, x]
            zbuf[y[closer], x[closer]] = z[order][closer]
            img[y[closer], x[closer]] = (colours[order][closer] * 255).astype(np.uint8)
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    j = screen(np.asarray(skeleton.joints))
    for p, c in skeleton.bones():
        draw.line([tuple(j[p]), tuple(j[c])], fill=(20, 20, 20), width=3)
    for i, (x, y) in enumerate(j):
        r = 5 if i == skeleton.root else 3
        draw.ellipse(
            [x - r, y - r, x + r, y + r],
            fill=(220, 30, 30) if i == skeleton.root else (255, 255, 255),
            outline=(0, 0, 0),
        )
    return pil


def _surface_splats(
    vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray, n: int = 60_000
) -> tuple[np.ndarray, np.ndarray]:
    """Points spread over the triangles (n, 3) with barycentric colours (n, 3), shaded by a head light."""
    if len(faces) == 0:
        return vertices, colours
    rng = np.random.default_rng(0)
    tri = vertices[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = np.linalg.norm(cross, axis=1)
    face = rng.choice(len(faces), size=n, p=area / area.sum()) if area.sum() > 0 else rng.integers(len(faces), size=n)
    u, w = rng.random((2, n))
    flip = u + w > 1
    u, w = np.where(flip, 1 - u, u), np.where(flip, 1 - w, w)
    bary = np.stack([1 - u - w, u, w], axis=1)[:, :, None]
    pts = (bary * tri[face]).sum(1)
    col = (bary * colours[faces[face]]).sum(1)
    normal = cross[face] / np.maximum(area[face], 1e-20)[:, None]
    shade = 0.55 + 0.45 * np.abs(normal @ np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8]))
    return pts, np.clip(col * shade[:, None], 0, 1)


def render_preview(
    path: str | Path,
    vertices: np.ndarray,
    faces: np.ndarray,
    weights: np.ndarray,
    skeleton: Skeleton,
    size: int = 320,
    title: str = "",
) -> Path:
    """Write a PNG of three views side by side (front, side, top), atomically; returns the path."""
    from PIL import Image, ImageDraw

    v, colours = _surface_splats(
        np.asarray(vertices, dtype=np.float64),
        np.asarray(faces),
        np.clip(np.asarray(weights) @ joint_colours(skeleton.num_joints), 0, 1),
    )
    pts = np.concatenate([v, np.asarray(skeleton.joints)])
    lo, span = pts.min(axis=0), float(np.ptp(pts, axis=0).max()) or 1.0
    lo = lo - (span - np.ptp(pts, axis=0)) / 2  # centre each view
    panels = [_view(v, colours, skeleton, axes, d, size, lo, span) for _, axes, d in _VIEWS]
    out = Image.new("RGB", (size * 3, size + 24), "white")
    draw = ImageDraw.Draw(out)
    for i, (panel, (name, _, _)) in enumerate(zip(panels, _VIEWS, strict=True)):
        out.paste(panel, (i * size, 24))  # type: ignore[arg-type]
        draw.text((i * size + 8, 6), name, fill="black")
    label = f"{title}  ({skeleton.num_joints} joints)" if title else f"{skeleton.num_joints} joints"
    draw.text((70, 6), label, fill="black")
    with atomic_path(path) as tmp:
        out.save(tmp, format="PNG")
    return Path(path)
