"""The PIL x-y chart the benches draw trade-offs with: points land where their values say."""

import numpy as np
from PIL import Image

from genmotion.bench.chart import PALETTE, Series, XYPanel, xy_chart


def _centre(img: np.ndarray, colour: tuple[int, int, int]) -> tuple[float, float]:
    ys, xs = np.nonzero((img == np.array(colour)).all(-1))
    assert len(xs), f"no pixel of {colour}"
    return float(xs.mean()), float(ys.mean())


def test_points_land_by_value_and_targets_are_drawn(tmp_path):
    low = Series("low", [(1.0, 1.0)], line=False)
    high = Series("high", [(9.0, 5.0)], line=False)
    panel = XYPanel("t", "x", "y", [low, high], x_targets=[(5.0, "")], y_targets=[(3.0, "")])
    path = xy_chart([panel], tmp_path / "c.png", width=600, panel_height=300)
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape == (310, 600, 3)
    (lx, ly), (hx, hy) = _centre(img[:, :400], PALETTE[0]), _centre(img[:, :400], PALETTE[1])
    assert hx > lx + 100 and hy < ly - 50  # larger x to the right, larger y higher up
    assert ((img == np.array((200, 60, 60))).all(-1)).sum() > 50  # the dashed target lines
