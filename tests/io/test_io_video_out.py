"""Video writers: MP4/GIF/PNG round trips, atomic rename, partial output on interruption, frame checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from genmotion.errors import UsageError
from genmotion.io import Mp4Writer, open_video_writer, probe, read_video, video_format


def moving_gradient(num_frames: int, height: int = 32, width: int = 48) -> np.ndarray:
    """(T, H, W, 3) uint8 smooth frames that change over time (easy for H.264, distinct for GIF)."""
    t, y, x = np.meshgrid(np.arange(num_frames), np.arange(height), np.arange(width), indexing="ij")
    r = (x * 255 // max(width - 1, 1) + 20 * t) % 256
    g = y * 255 // max(height - 1, 1)
    b = (40 * t) % 256 + 0 * x
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_mp4_round_trip_frame_count_size_codec(tmp_path: Path) -> None:
    frames = moving_gradient(6)
    path = tmp_path / "out.mp4"
    with open_video_writer(path, fps=12) as writer:
        writer.write(frames[:5])  # a chunk (T, H, W, 3) ...
        writer.write(torch.from_numpy(frames[5]))  # ... and a single (H, W, 3) tensor
    info = probe(path)
    assert (info.num_frames, info.height, info.width, info.codec, info.fps) == (6, 32, 48, "h264", 12.0)
    video = read_video(path)
    assert video.shape == (6, 32, 48, 3) and video.dtype == np.uint8
    assert np.abs(video.astype(int) - frames.astype(int)).mean() < 4  # crf 18: visually lossless
    assert read_video(path, start=1, stop=5, step=2).shape[0] == 2
    assert leftovers(tmp_path) == []


def test_gif_and_png_folder_round_trip(tmp_path: Path) -> None:
    frames = moving_gradient(4, 17, 21)  # odd sizes are fine outside yuv420p
    for path in (tmp_path / "anim.gif", tmp_path / "frames"):
        with open_video_writer(path, fps=10) as writer:
            writer.write(frames)
        info = probe(path)
        assert (info.num_frames, info.height, info.width) == (4, 17, 21)
        assert read_video(path).shape == (4, 17, 21, 3)
    assert probe(tmp_path / "anim.gif").codec == "gif"
    assert np.abs(read_video(tmp_path / "anim.gif").astype(int) - frames.astype(int)).mean() < 8  # 256 colours
    np.testing.assert_array_equal(read_video(tmp_path / "frames"), frames)  # PNG is lossless
    assert leftovers(tmp_path) == []


def test_nothing_appears_at_the_final_path_before_close(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.mp4"  # missing folders are created
    writer = open_video_writer(path, fps=8)
    writer.write(moving_gradient(30))
    assert not path.exists()
    assert writer.close() == path and probe(path).num_frames == 30
    assert leftovers(path.parent) == []


def test_png_output_replaces_an_existing_folder(tmp_path: Path) -> None:
    path = tmp_path / "frames"
    for num_frames in (5, 2):
        with open_video_writer(path, fps=8) as writer:
            writer.write(moving_gradient(num_frames))
    assert probe(path).num_frames == 2


@pytest.mark.parametrize("name", ["out.mp4", "out.gif", "frames"])
def test_interrupted_run_leaves_a_playable_partial_file(tmp_path: Path, name: str) -> None:
    path, k = tmp_path / name, 3
    with pytest.raises(KeyboardInterrupt) as raised:
        with open_video_writer(path, fps=8) as writer:
            for frame in moving_gradient(10)[:k]:
                writer.write(frame)
            raise KeyboardInterrupt
    partial = {"out.mp4": "out.partial.mp4", "out.gif": "out.partial.gif", "frames": "frames.partial"}[name]
    assert writer.partial_path == tmp_path / partial
    assert not path.exists()
    assert probe(writer.partial_path).num_frames == k
    assert read_video(writer.partial_path).shape[0] == k
    assert str(writer.partial_path) in "".join(getattr(raised.value, "__notes__", [str(writer.partial_path)]))
    assert leftovers(tmp_path) == []


def test_interruption_before_any_frame_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), open_video_writer(tmp_path / "out.mp4", fps=8) as writer:
        raise RuntimeError("model failed")
    assert writer.partial_path is None and list(tmp_path.iterdir()) == []


def test_odd_size_is_padded_or_refused(tmp_path: Path) -> None:
    frames = moving_gradient(3, 33, 35)
    with open_video_writer(tmp_path / "pad.mp4", fps=8) as writer:
        writer.write(frames)
    assert probe(tmp_path / "pad.mp4").size == (34, 36)
    video = read_video(tmp_path / "pad.mp4")
    assert np.abs(video[:, :33, :35].astype(int) - frames.astype(int)).mean() < 4
    writer = Mp4Writer(tmp_path / "strict.mp4", fps=8, odd_size="error")
    with pytest.raises(UsageError, match="even"):
        writer.write(frames)
    writer.discard()
    assert list(tmp_path.iterdir()) == [tmp_path / "pad.mp4"]


def test_bad_frames_and_misuse_are_usage_errors(tmp_path: Path) -> None:
    writer = open_video_writer(tmp_path / "out.mp4", fps=8)
    with pytest.raises(UsageError, match="uint8"):
        writer.write(np.zeros((2, 16, 16, 3), np.float32))
    with pytest.raises(UsageError, match="shape"):
        writer.write(np.zeros((2, 3, 16, 16), np.uint8))
    writer.write(np.zeros((2, 16, 16, 3), np.uint8))
    with pytest.raises(UsageError, match="size changed"):
        writer.write(np.zeros((16, 18, 3), np.uint8))
    writer.close()
    with pytest.raises(UsageError, match="closed"):
        writer.write(np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(UsageError, match="no frames"):
        open_video_writer(tmp_path / "empty.mp4", fps=8).close()
    with pytest.raises(UsageError, match="suffix"):
        video_format(tmp_path / "out.avi")
    with pytest.raises(UsageError, match="fps"):
        open_video_writer(tmp_path / "x.mp4", fps=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
