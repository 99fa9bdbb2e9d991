"""X-Y chart panels drawn with PIL (no plotting library offline): lines or points per series, labelled points,
dashed target lines, written as one PNG atomically. What the benches draw when a reader wants a trade-off
(speedup against fidelity, bytes against length), not a list of bars."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Series", "XYPanel", "xy_chart"]

PALETTE = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34)]  # fmt: skip


@dataclass(frozen=True)
class Series:
    """One curve: points (x, y) in order, each with an optional label drawn beside it."""

    name: str
    points: Sequence[tuple[float, float]]
    labels: Sequence[str] = ()
    line: bool = True  # False: points only
    marker: str = "o"  # "o" dot, "*" a large star (an exact / reference point)


@dataclass(frozen=True)
class XYPanel:
    """A panel: title, axis names, series, dashed target lines at x = v / y = v (with their captions)."""

    title: str
    x_label: str
    y_label: str
    series: Sequence[Series]
    x_targets: Sequence[tuple[float, str]] = field(default_factory=tuple)
    y_targets: Sequence[tuple[float, str]] = field(default_factory=tuple)
    log_y: bool = False


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    step = (hi - lo) / max(count - 1, 1)
    return [lo + i * step for i in range(count)]


def _dashed(draw: object, a: tuple[float, float], b: tuple[float, float], fill: tuple[int, int, int]) -> None:
    (x0, y0), (x1, y1) = a, b
    n = max(1, int(math.hypot(x1 - x0, y1 - y0) // 8))
    for i in range(0, n, 2):
        p = (x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n)
        q = (x0 + (x1 - x0) * (i + 1) / n, y0 + (y1 - y0) * (i + 1) / n)
        draw.line([p, q], fill=fill, width=1)  # type: ignore[attr-defined]


def _draw_panel(img: object, panel: XYPanel, top: int, width: int, height: int) -> None:
    """One panel into `img` at row `top`: axes with ticks, targets, series, legend. Long (one drawing)."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(img)  # type: ignore[arg-type]
    left, right, plot_top, bottom = 70, width - 190, top + 28, top + height - 40
    fy = (lambda v: math.log10(max(v, 1e-9))) if panel.log_y else (lambda v: v)
    xs = [x for s in panel.series for x, _ in s.points] + [v for v, _ in panel.x_targets]
    ys = [fy(y) for s in panel.series for _, y in s.points] + [fy(v) for v, _ in panel.y_targets]
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    y_lo, y_hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    pad_x, pad_y = (x_hi - x_lo) * 0.05 or 1.0, (y_hi - y_lo) * 0.08 or 1.0
    x_lo, x_hi, y_lo, y_hi = x_lo - pad_x, x_hi + pad_x, y_lo - pad_y, y_hi + pad_y

    def px(x: float, y: float) -> tuple[float, float]:
        u = left + (x - x_lo) / (x_hi - x_lo) * (right - left)
        return u, bottom - (fy(y) - y_lo) / (y_hi - y_lo) * (bottom - plot_top)

    draw.text((left, top + 6), panel.title, fill="black")
    draw.rectangle([left, plot_top, right, bottom], outline=(90, 90, 90))
    for t in _ticks(x_lo + pad_x, x_hi - pad_x):
        u = left + (t - x_lo) / (x_hi - x_lo) * (right - left)
        draw.line([(u, bottom), (u, bottom + 4)], fill="black")
        draw.text((u - 12, bottom + 6), f"{t:.3g}", fill="black")
    for t in _ticks(y_lo + pad_y, y_hi - pad_y):
        v = bottom - (t - y_lo) / (y_hi - y_lo) * (bottom - plot_top)
        draw.line([(left - 4, v), (left, v)], fill="black")
        draw.text((8, v - 6), f"{10**t if panel.log_y else t:.3g}", fill="black")
    draw.text(((left + right) // 2 - 40, bottom + 20), panel.x_label, fill="black")
    draw.text((8, plot_top - 14), panel.y_label, fill="black")
    for value, caption in panel.x_targets:
        u, _ = px(value, 1.0 if panel.log_y else 0.0)
        _dashed(draw, (u, plot_top), (u, bottom), (200, 60, 60))
        draw.text((u + 3, plot_top + 2), caption, fill=(200, 60, 60))
    for value, caption in panel.y_targets:
        _, v = px(x_lo, value)
        _dashed(draw, (left, v), (right, v), (200, 60, 60))
        draw.text((left + 4, v - 13), caption, fill=(200, 60, 60))
    for i, s in enumerate(panel.series):
        colour = PALETTE[i % len(PALETTE)]
        pts = [px(x, y) for x, y in s.points]
        if s.line and len(pts) > 1:
            draw.line(pts, fill=colour, width=2)
        r = 6 if s.marker == "*" else 3
        for (u, v), label in zip(pts, list(s.labels) + [""] * len(pts), strict=False):
            draw.ellipse([u - r, v - r, u + r, v + r], fill=colour, outline="black" if s.marker == "*" else colour)
            if label:
                draw.text((u + 5, v - 12), label, fill=colour)
        ly = plot_top + 4 + 14 * i
        draw.rectangle([right + 12, ly + 3, right + 22, ly + 11], fill=colour)
        draw.text((right + 28, ly), s.name, fill="black")


def xy_chart(panels: Sequence[XYPanel], path: str | Path, *, width: int = 900, panel_height: int = 360) -> Path:
    """Stacked x-y panels as one PNG, written atomically."""
    from PIL import Image

    img = Image.new("RGB", (width, panel_height * len(panels) + 10), "white")
    for i, panel in enumerate(panels):
        _draw_panel(img, panel, 5 + i * panel_height, width, panel_height)
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp.png")
    img.save(tmp)
    tmp.replace(out)
    return out
