"""VR output: an H.264 MP4 writer that tags its file (complete or partial) with Google Spherical Video
metadata, the 3 x 2 cubemap frame layout that metadata names, and the output writers of `--format`.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from genmotion.io.mp4 import Mp4Writer
from genmotion.io.video_out import open_video_writer
from genmotion.io.writer import VideoWriter
from genmotion.panorama.spherical import Projection, inject_spherical

__all__ = ["CUBEMAP_3X2", "OutputFormat", "SphericalMp4Writer", "cube_to_3x2", "open_panorama_writer"]

OutputFormat = Literal["equirect", "cubemap", "frames"]

# Google's cubemap layout 0: [right | left | up] over [down | front | back]; (face index in F R B L U D,
# quarter turns counter-clockwise applied to our face) per cell, matching ffmpeg's v360 c3x2 reading.
CUBEMAP_3X2: tuple[tuple[int, int], ...] = ((1, 0), (3, 0), (4, 0), (5, 0), (0, 0), (2, 0))


def cube_to_3x2(c_B6CSS: torch.Tensor) -> torch.Tensor:
    """(B, 6, C, S, S) -> (B, C, 2S, 3S) in the V2 cubemap layout 0."""
    cells = [torch.rot90(c_B6CSS[:, face], k, dims=(-2, -1)) for face, k in CUBEMAP_3X2]
    return torch.cat([torch.cat(cells[:3], dim=-1), torch.cat(cells[3:], dim=-1)], dim=-2)


class SphericalMp4Writer(Mp4Writer):
    """`Mp4Writer` whose finished file, and the partial file of an interrupted run, carry spherical metadata."""

    def __init__(
        self, path: str | Path, fps: float | Fraction = 24, *, projection: Projection = "equirectangular", **kw: object
    ) -> None:
        super().__init__(path, fps, **kw)  # type: ignore[arg-type]
        self.projection: Projection = projection

    def _finish(self) -> None:
        super()._finish()
        inject_spherical(self._tmp, self.projection)


def open_panorama_writer(
    path: str | Path, fps: float | Fraction, fmt: OutputFormat, *, crf: int = 20, preset: str = "veryfast"
) -> VideoWriter:
    """The writer of one `--format`: a tagged equirect or cubemap MP4, or a folder of equirect PNGs."""
    if fmt == "frames":
        return open_video_writer(path, fps)
    projection: Projection = "equirectangular" if fmt == "equirect" else "cubemap"
    return SphericalMp4Writer(path, fps, projection=projection, crf=crf, preset=preset)


def frames_uint8(x_T3HW: torch.Tensor) -> np.ndarray:
    """[-1, 1] frames (T, 3, H, W) -> uint8 (T, H, W, 3)."""
    from genmotion.pipeline import to_uint8

    return to_uint8(x_T3HW)
