"""One entry point for video output: the format follows the path (`.mp4`, `.gif`, or a folder of PNGs)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from genmotion.errors import UsageError
from genmotion.io.atomic import check_output_folder
from genmotion.io.frames import OddSize
from genmotion.io.image_writers import GifWriter, PngSequenceWriter
from genmotion.io.mp4 import Mp4Writer
from genmotion.io.writer import VideoWriter

__all__ = ["open_video_writer", "video_format"]

_SUFFIXES = {".mp4": "mp4", ".gif": "gif"}


def video_format(path: str | Path) -> str:
    """'mp4', 'gif' or 'png' (a folder: a path ending in '/', an existing folder, or a name without suffix)."""
    text = str(path)
    p = Path(path)
    if text.endswith(("/", "\\")) or p.is_dir() or not p.suffix:
        return "png"
    kind = _SUFFIXES.get(p.suffix.lower())
    if kind is None:
        raise UsageError(
            f"cannot write video to {p}: unknown suffix {p.suffix!r}",
            why="supported outputs are .mp4 (H.264), .gif, or a folder for PNG frames",
            fix=f"use {p.with_suffix('.mp4').name}, {p.with_suffix('.gif').name} or {p.with_suffix('')}/",
        )
    return kind


def open_video_writer(
    path: str | Path,
    fps: float | Fraction = 24,
    *,
    crf: int = 18,
    preset: str = "medium",
    odd_size: OddSize = "pad",
    force: bool = False,
) -> VideoWriter:
    """Open a streaming writer for `path`, chosen by its suffix (see `video_format`).

    `crf`, `preset` and `odd_size` apply to MP4 only (see `Mp4Writer`); GIF and PNG take any size.
    Use the result as a context manager so an interrupted run leaves `out.partial.mp4` behind. A folder
    output is checked here, before any frame is made (see `genmotion.io.atomic.check_output_folder`;
    `force` moves a folder the suite did not write aside instead of refusing).
    """
    kind = video_format(path)
    writer: VideoWriter
    if kind == "mp4":
        writer = Mp4Writer(path, fps, crf=crf, preset=preset, odd_size=odd_size)
    elif kind == "gif":
        writer = GifWriter(path, fps)
    else:
        check_output_folder(path, PngSequenceWriter.kind, force)
        writer = PngSequenceWriter(path, fps)
    writer.force = force
    return writer
