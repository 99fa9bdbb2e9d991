"""Fixtures of the panorama tests: a tiny checkpoint on disk and a tiny input video with its trajectory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from panorama_tiny import tiny_pipeline, tiny_video


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ckpt") / "tiny"
    tiny_pipeline().save_pretrained(d)
    return d


@pytest.fixture()
def inputs(tmp_path: Path) -> dict[str, Path]:
    from genmotion.io import open_video_writer

    video = tmp_path / "persp.mp4"
    with open_video_writer(video, 8, crf=10) as w:
        w.write(tiny_video(5))
    traj = tmp_path / "traj.json"
    traj.write_text(json.dumps({"yaw": [0, 10, 20, 30, 40], "pitch": [0, 5, 10, 5, 0], "fov": 100}))
    return {"video": video, "trajectory": traj}
