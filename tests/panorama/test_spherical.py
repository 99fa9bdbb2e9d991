"""The box writer against ffprobe, offsets after faststart, the 3 x 2 cubemap against ffmpeg's v360."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from genmotion.io import open_video_writer, read_video
from genmotion.panorama.export import SphericalMp4Writer, cube_to_3x2
from genmotion.panorama.geometry import equirect_to_cube
from genmotion.panorama.spherical import inject_spherical, read_spherical

FFPROBE = shutil.which("ffprobe")
needs_ffmpeg = pytest.mark.skipif(FFPROBE is None, reason="ffprobe (Debian ffmpeg) is not installed")


def side_data(path: Path) -> list[dict]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)["streams"][0].get("side_data_list", [])


def frames(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 32, 64, 3), dtype=np.uint8)


@needs_ffmpeg
@pytest.mark.parametrize("projection", ["equirectangular", "cubemap"])
def test_writer_tags_are_read_by_ffprobe(tmp_path: Path, projection: str) -> None:
    path = tmp_path / "out.mp4"
    with SphericalMp4Writer(path, 8, projection=projection, preset="ultrafast") as w:  # type: ignore[arg-type]
        w.write(frames())
    sph = [d for d in side_data(path) if d["side_data_type"] == "Spherical Mapping"]
    assert sph and sph[0]["projection"] == projection
    expected = {"v2": projection} | ({"v1": "equirectangular"} if projection == "equirectangular" else {})
    assert read_spherical(path) == expected


def test_injection_keeps_the_video_decodable_and_identical(tmp_path: Path) -> None:
    """The writer's MP4 has moov before mdat (faststart): chunk offsets must move with the grown moov."""
    path = tmp_path / "plain.mp4"
    with open_video_writer(path, 8, preset="ultrafast") as w:
        w.write(frames(6))
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")
    before = read_video(path)
    inject_spherical(path)
    assert len(path.read_bytes()) > len(data)
    assert np.array_equal(read_video(path), before)
    assert read_spherical(path) == {"v1": "equirectangular", "v2": "equirectangular"}


def test_partial_file_of_an_interrupted_run_is_tagged(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt), SphericalMp4Writer(path, 8, preset="ultrafast") as w:
        w.write(frames(3))
        raise KeyboardInterrupt
    partial = tmp_path / "out.partial.mp4"
    assert not path.exists() and partial.exists()
    assert read_spherical(partial)["v2"] == "equirectangular"
    assert read_video(partial).shape[0] == 3


@needs_ffmpeg
def test_cubemap_layout_matches_ffmpeg_v360(tmp_path: Path) -> None:
    H, W = 128, 256
    yy, xx = np.meshgrid(np.linspace(0, 1, H), np.linspace(0, 1, W), indexing="ij")
    lon, lat = (xx * 2 - 1) * np.pi, (0.5 - yy) * np.pi
    img = np.stack([np.sin(lon) * np.cos(lat), np.sin(lat), np.cos(lon + 0.7) * np.cos(lat)], -1) * 0.5 + 0.5
    src, dst = tmp_path / "e.mp4", tmp_path / "c.mp4"
    with open_video_writer(src, 8, crf=8) as w:
        w.write((img * 255).astype(np.uint8)[None])
    cmd = ["ffmpeg", "-y", "-v", "error", "-i", str(src), "-vf", "v360=e:c3x2:w=192:h=128", "-crf", "8", str(dst)]
    subprocess.run(cmd, check=True)
    ref = torch.from_numpy(read_video(dst)[0]).permute(2, 0, 1).float() / 255
    mine = cube_to_3x2(equirect_to_cube(torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)[None], 64))[0]
    assert (mine - ref).abs().mean() < 0.02
