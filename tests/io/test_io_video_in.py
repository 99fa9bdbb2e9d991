"""Video reading: errors name the file; frame selection; backend choice."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from genmotion.errors import InputError, UsageError
from genmotion.io import iter_frames, open_video_writer, probe, read_video


def write_mp4(path: Path, num_frames: int) -> np.ndarray:
    frames = np.repeat(np.linspace(0, 255, num_frames, dtype=np.uint8)[:, None, None, None], 16, 1)
    frames = np.broadcast_to(frames, (num_frames, 16, 16, 3)).copy()
    with open_video_writer(path, fps=10) as writer:
        writer.write(frames)
    return frames


def test_missing_and_corrupt_files_are_input_errors(tmp_path: Path) -> None:
    for fn in (probe, read_video):
        with pytest.raises(InputError, match="not found"):
            fn(tmp_path / "missing.mp4")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    for fn in (probe, read_video):
        with pytest.raises(InputError, match="corrupt.mp4"):
            fn(corrupt)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no PNG"):
        read_video(tmp_path / "empty")


def test_frame_selection_and_empty_selection(tmp_path: Path) -> None:
    path = tmp_path / "ramp.mp4"
    frames = write_mp4(path, 8)
    picked = read_video(path, start=2, stop=8, step=3)
    assert picked.shape == (2, 16, 16, 3)
    assert np.abs(picked.astype(int) - frames[[2, 5]].astype(int)).max() <= 4
    assert read_video(path, start=20).shape == (0, 16, 16, 3)
    assert sum(1 for _ in iter_frames(path, backend="pyav")) == 8
    with pytest.raises(UsageError, match="step"):
        read_video(path, step=0)


def test_decord_backend_without_decord_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "decord", None)  # as if not installed
    path = tmp_path / "v.mp4"
    write_mp4(path, 2)
    with pytest.raises(UsageError, match="decord"):
        read_video(path, backend="decord")
    assert read_video(path, backend="auto").shape[0] == 2  # auto falls back to PyAV


@pytest.mark.skipif(importlib.util.find_spec("decord") is None, reason="decord is not installed")
def test_decord_and_pyav_agree(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    frames = (np.arange(4 * 32 * 64 * 3) % 251).astype(np.uint8).reshape(4, 32, 64, 3)
    with open_video_writer(path, fps=10) as writer:
        writer.write(frames)
    np.testing.assert_array_equal(read_video(path, backend="decord"), read_video(path, backend="pyav"))


@pytest.mark.skipif(importlib.util.find_spec("decord") is None, reason="decord is not installed")
def test_auto_falls_back_when_decord_misreads(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"  # 16 px wide: decord 0.6 returns (16, 16, 6) frames for this
    frames = write_mp4(path, 4)
    assert read_video(path).shape == frames.shape
