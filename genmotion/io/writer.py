"""The streaming video writer contract: frames are written as they are made to a temporary name, renamed
into place on `close()`; a run that fails or is interrupted inside `with` leaves a playable partial file.
"""

from __future__ import annotations

import abc
import logging
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

from genmotion.errors import UsageError
from genmotion.io.atomic import ensure_parent, partial_path_for, remove_path, replace_path, temporary_sibling
from genmotion.io.frames import as_frames

__all__ = ["VideoWriter", "as_fps"]

log = logging.getLogger(__name__)

_State = Literal["open", "closed", "partial", "discarded"]


def _raise_if_interrupted() -> None:
    from genmotion.runtime import raise_if_interrupted

    raise_if_interrupted()


def as_fps(fps: float | Fraction) -> Fraction:
    """Frames per second as an exact fraction (29.97 -> 2997/100); a non-positive rate is a usage error."""
    if not fps or fps <= 0:
        raise UsageError(f"fps must be positive, got {fps}", fix="pass e.g. fps=24")
    return Fraction(fps).limit_denominator(1001)


class VideoWriter(abc.ABC):
    """Writes frames to `path` as they come; use it as a context manager.

        with open_video_writer("out.mp4", fps=24) as writer:
            for chunk in pipe.stream(...):
                writer.write(chunk.frames)          # (T, H, W, 3) or (H, W, 3) uint8

    Leaving the block normally calls `close()`: the file appears at `path` complete. Leaving it by an
    exception (KeyboardInterrupt included) finalises the frames written so far at `partial_path`
    (`out.partial.mp4`), logs a warning naming it, adds a note to the exception, and re-raises.
    Nothing ever appears at `path` before `close()` returns. A folder output (PNG frames) follows the
    folder rule of `genmotion.io.atomic` (`kind` below; `force` moves a foreign folder aside).
    """

    kind = "video"  # the kind recorded in a folder output's marker
    force = False  # set by open_video_writer(force=True): a foreign folder at `path` is moved aside

    def __init__(self, path: str | Path, fps: float | Fraction) -> None:
        self.path = Path(path)
        self.fps = as_fps(fps)
        self.frames_written = 0
        self.partial_path: Path | None = None  # set once an interrupted run has been saved
        self._tmp = temporary_sibling(self.path)
        self._frame_size: tuple[int, int] | None = None  # (H, W) of the frames as given
        self._state: _State = "open"

    # -- what a format implements --------------------------------------------------------------------
    @abc.abstractmethod
    def _write(self, frames_THW3: np.ndarray) -> None:
        """Append frames to the temporary output at `self._tmp` (opening it on the first call)."""

    @abc.abstractmethod
    def _finish(self) -> None:
        """Flush and close the temporary output so it is a complete, playable file or folder."""

    def _release(self) -> None:
        """Drop open handles without finalising (after a failure); the temporary output is deleted next."""
        return None

    # -- the public contract -------------------------------------------------------------------------
    @property
    def frame_size(self) -> tuple[int, int] | None:
        """(height, width) of the frames written, as given; None before the first frame."""
        return self._frame_size

    @property
    def closed(self) -> bool:
        return self._state != "open"

    def write(self, frames: Any) -> None:
        """Append frames: uint8 (T, H, W, 3) or (H, W, 3), numpy or torch, all of one size."""
        if self._state != "open":
            raise UsageError(f"cannot write to {self.path}: the writer is already closed")
        _raise_if_interrupted()  # a Ctrl-C / SIGTERM that a library swallowed stops here, at the next frame
        frames_THW3 = as_frames(frames)
        if frames_THW3.shape[0] == 0:
            return
        size = (int(frames_THW3.shape[1]), int(frames_THW3.shape[2]))
        if self._frame_size is None:
            ensure_parent(self.path)
            self._frame_size = size
        elif size != self._frame_size:
            raise UsageError(
                f"frame size changed from {self._frame_size} to {size} while writing {self.path}",
                why="a video has one frame size",
                fix="resize frames before writing, or write them to separate files",
            )
        self._write(frames_THW3)
        self.frames_written += frames_THW3.shape[0]

    def close(self) -> Path:
        """Finalise the output and rename it into place; returns `path`. Closing twice is a no-op."""
        if self._state == "closed":
            return self.path
        if self._state != "open":
            raise UsageError(f"cannot close {self.path}: the writer was already {self._state}")
        if self.frames_written == 0:
            self.discard()
            raise UsageError(f"no frames were written to {self.path}", fix="write at least one frame before close()")
        self._finalise_to(self.path)
        self._state = "closed"
        return self.path

    def close_partial(self) -> Path | None:
        """Finalise the frames written so far at `partial_path_for(path)` and return that path (None when
        no frame was written: then nothing is left behind). Called by `__exit__` on an exception.
        """
        if self._state != "open":
            return self.partial_path
        if self.frames_written == 0:
            self.discard()
            return None
        target = partial_path_for(self.path)
        self._finalise_to(target)
        self._state = "partial"
        self.partial_path = target
        return target

    def discard(self) -> None:
        """Stop writing and delete everything written so far."""
        if self._state == "open":
            self._release()
            remove_path(self._tmp)
            self._state = "discarded"

    def _finalise_to(self, target: Path) -> None:
        try:
            self._finish()
            replace_path(self._tmp, target, self.kind, self.force)
        except BaseException:
            self._release()
            remove_path(self._tmp)
            self._state = "discarded"
            raise

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if exc is None:
            self.close()
            return False
        if self.closed:  # closed or discarded by the caller inside the block: nothing left to save
            return False
        try:
            saved = self.close_partial()
        except Exception:
            log.exception("could not save the partial output of %s", self.path)
            return False
        stopped = "interrupted" if isinstance(exc, KeyboardInterrupt) else "stopped by an error"
        if saved is None:
            message = f"{stopped} before any frame was made; nothing was written to {self.path}"
        else:
            message = f"{stopped} after {self.frames_written} frames; the partial video is at {saved}"
        log.info(message)
        exc.add_note(message)  # the CLI prints the last note of an interrupt
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, fps={self.fps}, frames={self.frames_written}, {self._state})"
