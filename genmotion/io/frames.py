"""Frame arrays as the writers take them: uint8 RGB, channel-last, (T, H, W, 3) or one (H, W, 3) frame,
from numpy or torch (torch is never imported here; tensors are recognised by their methods).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from genmotion.errors import UsageError

__all__ = ["OddSize", "as_frames", "even_size", "pad_to_even"]

OddSize = Literal["pad", "error"]


def as_frames(frames: Any) -> np.ndarray:
    """Return `frames` as a C-contiguous uint8 numpy array of shape (T, H, W, 3).

    Accepts numpy arrays and torch tensors (any device) of shape (T, H, W, 3) or (H, W, 3).
    """
    if hasattr(frames, "detach"):  # a torch.Tensor, without importing torch
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise UsageError(
            f"frames must have shape (T, H, W, 3) or (H, W, 3), got {tuple(frames.shape)}",
            why="video writers take channel-last RGB",
            fix="permute channel-first tensors with x.permute(0, 2, 3, 1)",
        )
    if frames.dtype != np.uint8:
        raise UsageError(
            f"frames must be uint8, got {frames.dtype}",
            why="writers do not guess the value range of float frames",
            fix="convert with (x.clamp(0, 1) * 255).round().to(torch.uint8) or np.uint8",
        )
    return np.ascontiguousarray(frames)


def even_size(height: int, width: int) -> tuple[int, int]:
    """The smallest even (height, width) at least as large as the given one."""
    return height + height % 2, width + width % 2


def pad_to_even(frames_THW3: np.ndarray) -> np.ndarray:
    """Pad the bottom row / right column by repeating the edge pixels so H and W are even (yuv420p needs it)."""
    _, h, w, _ = frames_THW3.shape
    if h % 2 == 0 and w % 2 == 0:
        return frames_THW3
    return np.pad(frames_THW3, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
