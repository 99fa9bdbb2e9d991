"""Video input: `probe`, `iter_frames` and `read_video` over MP4/GIF/any FFmpeg format or a folder of PNGs.

Decoding goes through decord when it is installed (fast for H.264/HEVC/VP9) and PyAV otherwise; decord
cannot read AV1, so a file decord rejects is read with PyAV. Both give the same uint8 RGB frames.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from genmotion.errors import InputError, UsageError

__all__ = ["Backend", "VideoInfo", "iter_frames", "probe", "read_video"]

log = logging.getLogger(__name__)

Backend = Literal["auto", "decord", "pyav"]


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learns without decoding: frame count, size, rate (None for PNG folders) and codec."""

    path: Path
    num_frames: int
    height: int
    width: int
    fps: float | None
    codec: str

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.height, self.width

    @property
    def duration(self) -> float | None:
        """Seconds, or None when the rate is unknown."""
        return self.num_frames / self.fps if self.fps else None


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise InputError(f"video not found: {path}", fix="check the path (relative paths start at the current folder)")


def _unreadable(path: Path, error: BaseException) -> InputError:
    return InputError(
        f"cannot read video {path}",
        why=getattr(error, "strerror", None) or f"{type(error).__name__}: {error}",
        fix="check that the file is complete and plays (e.g. ffprobe); re-encode it to H.264 MP4 if needed",
    )


def _png_files(folder: Path) -> list[Path]:
    def natural(p: Path) -> list[Any]:
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]

    files = sorted((p for p in folder.iterdir() if p.suffix.lower() == ".png"), key=natural)
    if not files:
        raise InputError(f"no PNG frames in {folder}", fix="point at a video file or a folder of .png frames")
    return files


def probe(path: str | Path) -> VideoInfo:
    """Frame count, size, fps and codec of a video file (PyAV, no decoding) or of a folder of PNG frames."""
    path = Path(path)
    _check_exists(path)
    if path.is_dir():
        from PIL import Image

        files = _png_files(path)
        with Image.open(files[0]) as image:
            width, height = image.size
        return VideoInfo(path, len(files), height, width, None, "png")
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video stream", fix="pass a video file")
            stream = container.streams.video[0]
            num_frames = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            codec = stream.codec_context.name
            return VideoInfo(path, num_frames, stream.height, stream.width, float(rate) if rate else None, codec)
    except av.FFmpegError as e:
        raise _unreadable(path, e) from e


def _frame_range(start: int, stop: int | None, step: int) -> range:
    if start < 0 or (stop is not None and stop < 0) or step < 1:
        raise UsageError(
            f"bad frame selection start={start}, stop={stop}, step={step}", fix="use start, stop >= 0, step >= 1"
        )
    return range(start, stop if stop is not None else 2**62, step)


def _iter_png(files: list[Path], frames: range) -> Iterator[np.ndarray]:
    from PIL import Image

    for i in frames:
        if i >= len(files):
            return
        with Image.open(files[i]) as image:
            yield np.array(image.convert("RGB"))  # a writable copy, like the decoders give


def _iter_pyav(path: Path, frames: range) -> Iterator[np.ndarray]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video stream", fix="pass a video file")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for i, frame in enumerate(container.decode(stream)):
                if i >= frames.stop:
                    return
                if i in frames:
                    yield frame.to_ndarray(format="rgb24")
    except av.FFmpegError as e:
        raise _unreadable(path, e) from e


def _open_decord(path: Path) -> Any | None:
    """A decord VideoReader, or None when decord is not installed or cannot read this file."""
    try:
        import decord
    except ImportError:
        return None
    import av

    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
        # decord 0.6 mis-reads frames whose width is not a multiple of 32 (it returns (H, W, 4) or (H, W, 6));
        # trust it only when its first frame has the size the container reports.
        shape = tuple(reader[0].shape)
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if shape != (stream.codec_context.height, stream.codec_context.width, 3):
                raise ValueError(f"decord frame shape {shape} disagrees with the container")
        reader.seek(0)
        return reader
    except Exception as e:  # decord raises its own DECORDError (e.g. on AV1): PyAV reads those
        log.debug("decord cannot read %s (%s); using PyAV", path, e)
        return None


def _iter_decord(reader: Any, frames: range) -> Iterator[np.ndarray]:
    for i in range(frames.start, min(frames.stop, len(reader)), frames.step):
        yield reader[i].asnumpy()


def iter_frames(
    path: str | Path, *, start: int = 0, stop: int | None = None, step: int = 1, backend: Backend = "auto"
) -> Iterator[np.ndarray]:
    """Yield frames `start:stop:step` of a video as uint8 (H, W, 3) RGB arrays, decoding as it goes.

    `backend="auto"` uses decord when installed and able to read the file, PyAV otherwise; "pyav" and
    "decord" force one ("decord" raises a UsageError when it is not installed).
    """
    path = Path(path)
    frames = _frame_range(start, stop, step)
    _check_exists(path)
    if path.is_dir():
        return _iter_png(_png_files(path), frames)
    if backend not in ("auto", "decord", "pyav"):
        raise UsageError(f"unknown video backend {backend!r}", fix="use 'auto', 'decord' or 'pyav'")
    reader = _open_decord(path) if backend != "pyav" else None
    if reader is not None:
        return _iter_decord(reader, frames)
    if backend == "decord":
        raise UsageError(
            f"decord cannot read {path}",
            why="decord is not installed, or it does not support this file (it cannot decode AV1)",
            fix="pip install 'genmotion[decord]', or use backend='auto' to fall back to PyAV",
        )
    return _iter_pyav(path, frames)


def read_video(
    path: str | Path, *, start: int = 0, stop: int | None = None, step: int = 1, backend: Backend = "auto"
) -> np.ndarray:
    """Frames `start:stop:step` of a video as one uint8 array of shape (T, H, W, 3) (see `iter_frames`)."""
    frames = list(iter_frames(path, start=start, stop=stop, step=step, backend=backend))
    if not frames:
        info = probe(path)
        return np.zeros((0, info.height, info.width, 3), dtype=np.uint8)
    return np.stack(frames)
