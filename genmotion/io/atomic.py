"""Atomic outputs: everything is written under a temporary name in the target's folder and renamed into
place only when complete, so a reader never sees half a file and a crash never clobbers a good one.

The folder rule: a folder output is assembled in a fresh temporary folder and swapped in only when the
target is absent, empty, or a previous output of the same kind (recognised by the `.genmotion-output`
marker written into every folder output). Anything else is refused (exit 2) unless `force=True`, which
moves the existing folder aside under a new name: nothing the suite did not write is ever deleted.
Temporary names carry the writer's process id, so the next run removes those of a crashed run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from genmotion.errors import UsageError

__all__ = [
    "MARKER_NAME",
    "atomic_folder",
    "atomic_path",
    "check_output_folder",
    "clean_stale_temporaries",
    "ensure_parent",
    "output_kind",
    "partial_path_for",
    "remove_path",
    "replace_path",
    "temporary_sibling",
    "write_bytes",
    "write_text",
]

log = logging.getLogger(__name__)

MARKER_NAME = ".genmotion-output"
# `.NAME.<pid>-<hex>.tmp` (this version) and `.NAME.<hex>.tmp` (earlier ones, no pid: removed when old)
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.(?:(?P<pid>\d+)-)?(?P<hex>[0-9a-f]{8})\.(?:tmp|old)$")
_LEGACY_AGE_S = 3600.0
# What older folder outputs (written before the marker existed) hold; such a folder counts as that kind.
_LEGACY_CONTENTS: dict[str, Callable[[str], bool]] = {
    "checkpoint": lambda n: n in ("config.yaml", "model.safetensors", "card.md"),
    "frames": lambda n: re.fullmatch(r"frame_\d{5,}\.png", n) is not None,
}


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def clean_stale_temporaries(path: str | Path) -> list[Path]:
    """Delete the temporary siblings of `path` left by runs that died (their process is gone); returns them."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    removed: list[Path] = []
    try:
        candidates = list(folder.glob(f".{_glob_escape(path.name)}.*"))
    except OSError:
        return removed
    for cand in candidates:
        m = _TMP_RE.match(cand.name)
        if m is None or m["name"] != path.name:
            continue
        stale = False
        if m["pid"] is not None:
            stale = not _pid_alive(int(m["pid"]))
        else:
            with contextlib.suppress(OSError):
                stale = time.time() - cand.lstat().st_mtime > _LEGACY_AGE_S
        if stale:
            remove_path(cand)
            removed.append(cand)
            log.info("removed %s, left by an interrupted run", cand)
    return removed


def _glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def temporary_sibling(path: str | Path, suffix: str = "tmp") -> Path:
    """A fresh hidden name next to `path` (same folder, so the final rename never crosses filesystems).

    The name holds this process's id; temporaries of dead processes next to `path` are removed first.
    """
    path = Path(path)
    clean_stale_temporaries(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.{suffix}")


def partial_path_for(path: str | Path) -> Path:
    """Where an interrupted run leaves its output: `out.mp4` -> `out.partial.mp4`, `frames/` -> `frames.partial/`."""
    path = Path(path)
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def output_kind(path: Path) -> str | None:
    """The kind recorded in a folder output's marker (or recognised from an older output's files); None
    when `path` is not a folder the suite wrote."""
    marker = path / MARKER_NAME
    with contextlib.suppress(OSError, UnicodeDecodeError):
        if marker.is_file():
            return marker.read_text().strip() or None
    try:
        names = [p.name for p in path.iterdir()]
    except OSError:
        return None
    for kind, accepts in _LEGACY_CONTENTS.items():
        if names and all(accepts(n) for n in names):
            return kind
    return None


def _describe(path: Path) -> str:
    try:
        names = sorted(p.name for p in path.iterdir())
    except OSError:
        return "a folder"
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"a folder of {len(names)} item{'s' if len(names) != 1 else ''} ({shown})"


def _check_not_cwd(path: Path) -> None:
    """Refuse a folder output that is the current folder, one above it, or the filesystem root."""
    if str(path) in ("", ".", "..") or path.name in ("", ".", ".."):
        raise UsageError(
            f"cannot write a folder output to {str(path) or '.'!r}",
            why="it names the current folder (or one above it), which would be replaced",
            fix="give a new name, e.g. -o out/ or -o out.mp4",
        )
    with contextlib.suppress(OSError):
        target, cwd = path.resolve(), Path.cwd().resolve()
        if target == cwd or target in cwd.parents or target == Path(target.anchor):
            raise UsageError(
                f"cannot write a folder output to {path}",
                why="it is the current folder or one that holds it",
                fix="give a new name, e.g. -o out/",
            )


def check_output_folder(path: str | Path, kind: str, force: bool = False) -> None:
    """Raise `UsageError` (exit 2) before any work when a folder output of `kind` may not go to `path`.

    Allowed: `path` absent, an empty folder, or a previous output of the same kind; with `force`, any
    folder (it is moved aside, not deleted). A file at `path` is always refused.
    """
    path = Path(path)
    _check_not_cwd(path)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir() or path.is_symlink():
        raise UsageError(
            f"cannot write the {kind} folder {path}: a file is there",
            why="genmotion never deletes a file it did not write",
            fix="choose another name, or remove the file yourself",
        )
    found = output_kind(path)
    if found == kind or force or not any(path.iterdir()):
        return
    what = f"a genmotion {found} output" if found else _describe(path)
    raise UsageError(
        f"{path} already exists and is {what}, not a previous {kind} output",
        why="genmotion replaces only folders it wrote itself",
        fix="choose another name, or pass --force to move the existing folder aside (nothing is deleted)",
    )


def _aside_name(path: Path) -> Path:
    for i in range(1, 10_000):
        cand = path.with_name(f"{path.name}.old-{i}")
        if not cand.exists():
            return cand
    raise UsageError(f"cannot move {path} aside: too many {path.name}.old-N folders", fix="clean them up")


def _swap_folder(src: Path, dst: Path, kind: str, force: bool) -> None:
    """Put the finished folder `src` at `dst` under the folder rule (marker written into `src` first)."""
    (src / MARKER_NAME).write_text(kind + "\n")
    check_output_folder(dst, kind, force)
    if not dst.exists():
        os.replace(src, dst)
        return
    ours = output_kind(dst) == kind or not any(dst.iterdir())
    if ours:  # a previous output of this kind (or an empty folder): replaced, the old one deleted after
        aside = temporary_sibling(dst, "old")
        os.replace(dst, aside)
        os.replace(src, dst)
        remove_path(aside)
        return
    kept = _aside_name(dst)  # force: keep what the user had, under a new name
    os.replace(dst, kept)
    os.replace(src, dst)
    log.warning("moved the existing folder %s aside to %s (nothing was deleted)", dst, kept)


def replace_path(src: Path, dst: Path, kind: str = "folder", force: bool = False) -> None:
    """Move `src` onto `dst`. A file replaces a file atomically; a folder follows the folder rule
    (`check_output_folder`). A file never replaces a folder, nor a folder a file."""
    if src.is_dir():
        _swap_folder(src, dst, kind, force)
        return
    if dst.is_dir():
        raise UsageError(f"cannot write {dst}: a folder is there", fix="choose another output name")
    os.replace(src, dst)


def remove_path(path: Path) -> None:
    """Delete a file or folder if it exists; never raises (used while cleaning up after an error)."""
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def ensure_parent(path: Path) -> None:
    """Create the folder that will hold `path` (outputs such as `-o results/run1/out.mp4` just work)."""
    if path.parent.exists() and not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: {path.parent} is a file, not a folder", fix="pick another path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot write {path}: cannot create its folder", why=str(e), fix="pick another path") from e


@contextlib.contextmanager
def atomic_path(path: str | Path, kind: str = "folder", force: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it to `path` when the block succeeds, delete it if it fails.

    The caller writes whatever it likes to the yielded path (a file or a folder; a folder follows the
    folder rule with `kind` and `force`):
        with atomic_path("out.png") as tmp:
            image.save(tmp, format="PNG")
    """
    path = Path(path)
    ensure_parent(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        if not tmp.exists():
            raise UsageError(
                f"nothing was written to {path}", why="the block under atomic_path() did not create the file"
            )
        replace_path(tmp, path, kind, force)
    finally:
        remove_path(tmp)  # a no-op after a successful rename


@contextlib.contextmanager
def atomic_folder(path: str | Path, kind: str, force: bool = False) -> Iterator[Path]:
    """Checked before the work starts, then like `atomic_path` for a folder: yields a fresh, existing
    temporary folder whose contents replace `path` when the block succeeds (see `check_output_folder`)."""
    path = Path(path)
    check_output_folder(path, kind, force)
    with atomic_path(path, kind, force) as tmp:
        tmp.mkdir()
        yield tmp


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
