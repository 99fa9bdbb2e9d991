"""GIF and PNG-sequence output through Pillow, under the same streaming/atomic contract as MP4."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from genmotion.io.writer import VideoWriter

__all__ = ["GifWriter", "PngSequenceWriter"]


class GifWriter(VideoWriter):
    """Animated GIF that loops forever. Each frame is quantised to its own 256-colour palette as it is
    written (fast octree: ~1 ms at 256², where median cut takes 350 ms); the file itself is assembled
    on close, because Pillow has no streaming GIF encoder (memory: one byte per pixel per frame).
    Pillow merges consecutive identical frames into one longer frame, so a reader may count fewer
    frames than were written; the playback timing is unchanged.
    """

    def __init__(self, path: str | Path, fps: float | Fraction = 12) -> None:
        super().__init__(path, fps)
        self._images: list[Any] = []

    def _write(self, frames_THW3: np.ndarray) -> None:
        from PIL import Image

        for frame_HW3 in frames_THW3:
            self._images.append(Image.fromarray(frame_HW3).quantize(256, method=Image.Quantize.FASTOCTREE))

    def _finish(self) -> None:
        first, *rest = self._images
        duration_ms = round(1000 / self.fps)  # GIF counts in 1/100 s, so rates above 50 fps are rounded
        first.save(self._tmp, format="GIF", save_all=True, append_images=rest, duration=duration_ms, loop=0)
        self._images = []

    def _release(self) -> None:
        self._images = []


class PngSequenceWriter(VideoWriter):
    """A folder of `frame_00000.png`, `frame_00001.png`, … written one by one into a temporary folder
    that is renamed to `path` on close. `fps` is recorded nowhere in the files; it is kept for symmetry.
    `compress_level` is zlib's 0–9 (lossless at every level; 1 is fast, 9 small).
    """

    kind = "frames"

    def __init__(self, path: str | Path, fps: float | Fraction = 24, *, compress_level: int = 1) -> None:
        super().__init__(path, fps)
        self.compress_level = compress_level

    def _write(self, frames_THW3: np.ndarray) -> None:
        from PIL import Image

        self._tmp.mkdir(exist_ok=True)
        for i, frame_HW3 in enumerate(frames_THW3):
            name = f"frame_{self.frames_written + i:05d}.png"
            Image.fromarray(frame_HW3).save(self._tmp / name, compress_level=self.compress_level)

    def _finish(self) -> None:
        """Every frame is already on disk; the rename in `close()` is all that is left."""
