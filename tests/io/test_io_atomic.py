"""Atomic file helpers: the old file survives a failed write; no temporary names are left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from genmotion.io import atomic_path, partial_path_for, write_bytes, write_text


def test_write_bytes_replaces_and_creates_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b.json"
    write_text(path, "{}")
    write_bytes(path, b"[1]")
    assert path.read_bytes() == b"[1]"
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["image.png"]


def test_partial_path_names() -> None:
    assert partial_path_for("out/ball.mp4") == Path("out/ball.partial.mp4")
    assert partial_path_for("forecast") == Path("forecast.partial")


# --------------------------------------------------------------------------------------------- folder rule
def test_folder_outputs_replace_only_their_own_kind(tmp_path: Path) -> None:
    from genmotion.errors import UsageError
    from genmotion.io.atomic import MARKER_NAME, atomic_folder, output_kind

    out = tmp_path / "shard"
    for n in (1, 2):  # absent, then a previous output of the same kind: replaced
        with atomic_folder(out, "shard") as tmp:
            (tmp / "clip.txt").write_text(str(n))
    assert (out / "clip.txt").read_text() == "2" and output_kind(out) == "shard"
    assert (out / MARKER_NAME).read_text().strip() == "shard"
    with pytest.raises(UsageError, match="genmotion shard output"), atomic_folder(out, "frames"):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard"]


def test_a_user_folder_is_refused_then_moved_aside_with_force(tmp_path: Path) -> None:
    from genmotion.errors import UsageError
    from genmotion.io.atomic import atomic_folder

    out = tmp_path / "src"
    out.mkdir()
    (out / "main.c").write_text("int main;")
    with pytest.raises(UsageError, match=r"1 item \(main.c\).*--force"), atomic_folder(out, "frames") as tmp:
        (tmp / "frame_00000.png").write_bytes(b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    with atomic_folder(out, "frames", force=True) as tmp:
        (tmp / "frame_00000.png").write_bytes(b"x")
    assert (tmp_path / "src.old-1" / "main.c").read_text() == "int main;"  # nothing deleted
    assert (out / "frame_00000.png").exists()


def test_empty_folder_file_target_and_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from genmotion.errors import UsageError
    from genmotion.io.atomic import atomic_folder, check_output_folder

    (tmp_path / "empty").mkdir()
    with atomic_folder(tmp_path / "empty", "frames") as tmp:
        (tmp / "a").write_text("1")
    (tmp_path / "f").write_text("keep")
    with pytest.raises(UsageError, match="a file is there"):
        check_output_folder(tmp_path / "f", "frames", force=True)
    monkeypatch.chdir(tmp_path / "empty")
    for target in (".", "..", str(tmp_path), ""):
        with pytest.raises(UsageError, match="current folder|holds it"):
            check_output_folder(Path(target), "frames", force=True)
    assert (tmp_path / "f").read_text() == "keep"


def test_temporaries_of_dead_runs_are_cleaned_by_the_next_run(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from genmotion.io.atomic import temporary_sibling

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.mp4.{dead.stdout.strip()}-deadbeef.tmp"
    stale.write_bytes(b"half a video")
    (tmp_path / ".out.mp4.old-dir.tmp").mkdir()  # not our pattern: left alone
    alive = tmp_path / f".out.mp4.{os.getpid()}-cafef00d.tmp"
    alive.write_bytes(b"being written")
    fresh = temporary_sibling(tmp_path / "out.mp4")
    assert not stale.exists() and alive.exists() and (tmp_path / ".out.mp4.old-dir.tmp").exists()
    assert fresh.name.startswith(f".out.mp4.{os.getpid()}-") and fresh.suffix == ".tmp"
