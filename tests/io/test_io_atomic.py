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
