"""Fidelity measures every generator and bench shares: PSNR on tensors or arrays, in one place."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["mse", "psnr"]


def mse(a: Any, b: Any) -> float:
    """Mean squared difference of two same-shaped tensors or arrays, in float64."""
    if hasattr(a, "detach"):
        return float((a.detach().double() - b.detach().double()).square().mean())
    return float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2))


def psnr(a: Any, b: Any, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB of `a` against `b` whose values span `data_range` (255 for uint8
    frames, 2 for images in [-1, 1], 1 for [0, 1]); `math.inf` when they are identical."""
    error = mse(a, b)
    return math.inf if error == 0 else 10 * math.log10(data_range**2 / error)
