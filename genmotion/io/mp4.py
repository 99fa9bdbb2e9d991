"""Streaming H.264 MP4 output through PyAV (libx264, yuv420p): each frame is encoded as it is written."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from genmotion.errors import UsageError
from genmotion.io.frames import OddSize, even_size, pad_to_even
from genmotion.io.writer import VideoWriter

__all__ = ["Mp4Writer"]

log = logging.getLogger(__name__)


class Mp4Writer(VideoWriter):
    """H.264 in MP4, playable everywhere (yuv420p, `+faststart` so the index precedes the data).

    yuv420p needs an even width and height: with `odd_size="pad"` (default) the bottom row / right
    column is repeated to make them even; with `odd_size="error"` an odd size is a UsageError.
    `crf` is the x264 quality (0 lossless, 18 visually lossless, 23 x264's default); `preset` trades
    encode speed for size ("ultrafast" … "veryslow").
    """

    def __init__(
        self,
        path: str | Path,
        fps: float | Fraction = 24,
        *,
        crf: int = 18,
        preset: str = "medium",
        odd_size: OddSize = "pad",
    ) -> None:
        super().__init__(path, fps)
        if odd_size not in ("pad", "error"):
            raise UsageError(f"odd_size must be 'pad' or 'error', got {odd_size!r}")
        self.crf, self.preset, self.odd_size = crf, preset, odd_size
        self._container: Any = None
        self._stream: Any = None

    def _open(self, height: int, width: int) -> None:
        import av  # PyAV costs ~0.1 s to import: only when a video is actually written

        if (height % 2 or width % 2) and self.odd_size == "error":
            raise UsageError(
                f"cannot encode {width}x{height} frames as H.264 yuv420p",
                why="yuv420p stores colour at half resolution, so width and height must be even",
                fix="crop or pad the frames to an even size, or pass odd_size='pad'",
            )
        if height % 2 or width % 2:
            log.info("padding %dx%d frames to an even size for yuv420p", width, height)
        height, width = even_size(height, width)
        self._container = av.open(str(self._tmp), mode="w", format="mp4", options={"movflags": "+faststart"})
        stream = self._container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / self.fps
        stream.options = {"crf": str(self.crf), "preset": self.preset}
        self._stream = stream

    def _write(self, frames_THW3: np.ndarray) -> None:
        import av

        if self._container is None:
            self._open(frames_THW3.shape[1], frames_THW3.shape[2])
        frames_THW3 = pad_to_even(frames_THW3)
        for i, frame_HW3 in enumerate(frames_THW3):
            frame = av.VideoFrame.from_ndarray(frame_HW3, format="rgb24")
            frame.pts = self.frames_written + i
            self._container.mux(self._stream.encode(frame))

    def _finish(self) -> None:
        self._container.mux(self._stream.encode(None))  # drain the frames x264 holds for lookahead
        self._container.close()
        self._container = None

    def _release(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # the container may be half-written; it is deleted next anyway
                log.debug("ignoring an error while closing %s", self._tmp, exc_info=True)
            self._container = None
