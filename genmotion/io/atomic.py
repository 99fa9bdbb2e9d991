"""Atomic outputs: everything is written under a temporary name in the target's folder and renamed into
place only when complete, so a reader never sees half a file and a crash never clobbers a good one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from genmotion.errors import UsageError

__all__ = [
    "atomic_path",
    "ensure_parent",
    "partial_path_for",
    "remove_path",
    "replace_path",
    "temporary_sibling",
    "write_bytes",
    "write_text",
]


def temporary_sibling(path: str | Path) -> Path:
    """A fresh hidden name next to `path` (same folder, so the final rename never crosses filesystems)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def partial_path_for(path: str | Path) -> Path:
    """Where an interrupted run leaves its output: `out.mp4` -> `out.partial.mp4`, `frames/` -> `frames.partial/`."""
    path = Path(path)
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def replace_path(src: Path, dst: Path) -> None:
    """Move `src` onto `dst`, replacing what is there. Files are replaced atomically; a directory that
    already exists at `dst` is moved aside first and deleted after (POSIX cannot rename onto a full folder).
    """
    if src.is_dir() and dst.is_dir():
        aside = temporary_sibling(dst)
        os.replace(dst, aside)
        os.replace(src, dst)
        shutil.rmtree(aside, ignore_errors=True)
        return
    if src.is_dir() != dst.is_dir() and dst.exists():
        kind = "a folder" if dst.is_dir() else "a file"
        raise UsageError(f"cannot write {dst}: it exists and is {kind}", fix="choose another output path or remove it")
    os.replace(src, dst)


def remove_path(path: Path) -> None:
    """Delete a file or folder if it exists; never raises (used while cleaning up after an error)."""
    with contextlib.suppress(OSError):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def ensure_parent(path: Path) -> None:
    """Create the folder that will hold `path` (outputs such as `-o results/run1/out.mp4` just work)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot write {path}: cannot create its folder", why=str(e), fix="pick another path") from e


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it to `path` when the block succeeds, delete it if it fails.

    The caller writes whatever it likes to the yielded path (a file or a folder):
        with atomic_path("out.png") as tmp:
            image.save(tmp, format="PNG")
    """
    path = Path(path)
    ensure_parent(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
    except BaseException:
        remove_path(tmp)
        raise
    if not tmp.exists():
        raise UsageError(f"nothing was written to {path}", why="the block under atomic_path() did not create the file")
    try:
        replace_path(tmp, path)
    except BaseException:
        remove_path(tmp)
        raise


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (flushed to disk before the rename); returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return path


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically; returns the path."""
    return write_bytes(path, text.encode(encoding))
