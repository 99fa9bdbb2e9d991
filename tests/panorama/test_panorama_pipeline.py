"""The panorama pipeline: stream == generate, seeds, golden slice, round trip, sizes and bad arguments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from panorama_tiny import tiny_pipeline, tiny_video

from genmotion.errors import InputError, UsageError
from genmotion.panorama import CubeComposerPipeline, SampleConfig
from genmotion.panorama.data import Trajectory
from genmotion.panorama.pipeline import as_video
from genmotion.panorama.sampler import CubeComposerSampler
from genmotion.panorama.trajectory import parse_trajectory

TRAJ = {"yaw": [0, 10, 20, 30, 40], "pitch": [0, 5, 10, 5, 0], "fov": 100}


def cube_of(pipe: CubeComposerPipeline, video: np.ndarray, traj: dict, seed: int, sample: SampleConfig) -> torch.Tensor:
    """The generated cube alone (the sampler on the pipeline's condition), without rendering output frames."""
    trajectory = parse_trajectory(traj, video.shape[0])
    cond, mask = pipe.condition(as_video(video), trajectory)
    sampler = CubeComposerSampler(pipe.model, sample)
    return torch.cat([w.cube for w in sampler.stream(cond, mask, torch.Generator().manual_seed(seed))])


def test_stream_equals_generate_and_seeds() -> None:
    pipe, video = tiny_pipeline(), tiny_video()
    chunks = list(pipe.stream(video, TRAJ, seed=3))
    assert [c.start for c in chunks] == [0, 2, 4]  # windows of 2 frames
    result = pipe.generate(video, TRAJ, seed=3)
    assert np.array_equal(np.concatenate([c.frames for c in chunks]), result.frames)
    assert result.frames.shape == (5, 512, 1024, 3) and result.frames.dtype == np.uint8
    again = next(iter(pipe.stream(video, TRAJ, seed=3))).cube  # the stream is lazy: one window is made
    assert torch.equal(again, result.cube[:2])  # same seed, same window
    assert not torch.equal(next(iter(pipe.stream(video, TRAJ, seed=4))).cube, again)


def test_golden_slice() -> None:
    for sample, golden in ((SampleConfig(), GOLDEN), (SampleConfig(blend="one_sided"), GOLDEN_ONE_SIDED)):
        cube = cube_of(tiny_pipeline(), tiny_video(), TRAJ, 0, sample)
        got = cube[2, 2, 0, 3, :6]  # frame 2, face B (never seen), red channel
        torch.testing.assert_close(got, torch.tensor(golden), atol=1e-4, rtol=0)


# Both seams' predictions cross-faded (the default since the two-sided seam blend); each face's padding
# blended into the neighbours made before it (the earlier default, its values unchanged).
GOLDEN = [-0.034, -0.1368, -0.1329, -0.9461, -0.049, -0.1365]
GOLDEN_ONE_SIDED = [0.3526, 0.2343, -0.3433, -1.0, 0.0727, -0.1537]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    pipe = tiny_pipeline()
    for p in pipe.model.parameters():  # what bf16 storage keeps
        p.data = p.data.bfloat16().float()
    pipe.save_pretrained(tmp_path / "ckpt")
    loaded = CubeComposerPipeline.from_pretrained(tmp_path / "ckpt")
    assert loaded.config == pipe.config and loaded.input_size == pipe.input_size
    short = {"yaw": [0, 10], "pitch": [0, 5], "fov": 100}
    a, b = pipe.generate(tiny_video(2), short, seed=1), loaded.generate(tiny_video(2), short, seed=1)
    assert torch.equal(a.cube, b.cube)


def test_front_default_sizes_and_formats() -> None:
    pipe, video = tiny_pipeline(), tiny_video(2)
    chunk = next(iter(pipe.stream(video, size="2k", format="cubemap")))
    assert chunk.frames.shape == (2, 1024, 1536, 3)  # 3 x 2 faces of 512
    front = pipe.generate(video).frames  # no trajectory: the camera looks at the front face
    centre = front[:, 256, 512].astype(int)
    mask_back = front[:, 256, 0].astype(int)
    assert centre.std() > 0 and not np.array_equal(centre, mask_back)
    traj = Trajectory.front(2, 90)
    assert np.array_equal(pipe.generate(video, traj).frames, front)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"size": "8k"}, UsageError),
        ({"fov": 175.0}, UsageError),
        ({"format": "eac"}, UsageError),
        ({"trajectory": {"yaw": [0], "pitch": [0]}}, InputError),
        ({"trajectory": {"yaw": [0] * 5, "pitch": [0] * 5, "zoom": 2}}, InputError),
        ({"trajectory": {"yaw": [0] * 5, "pitch": [0] * 5, "fov": 5}}, InputError),
    ],
)
def test_bad_arguments_fail_before_any_chunk(kwargs: dict, error: type) -> None:
    pipe = tiny_pipeline()
    args = {"trajectory": TRAJ} | kwargs
    with pytest.raises(error):
        pipe.stream(tiny_video(), args.pop("trajectory"), **args)


def test_ablation_switches_run() -> None:
    pipe, video = tiny_pipeline(), tiny_video(3)
    traj = {"yaw": [0, 1, 2], "pitch": [0, 0, 0], "fov": 100}
    base = cube_of(pipe, video, traj, 0, SampleConfig())
    assert torch.equal(base[:2], next(iter(pipe.stream(video, traj, seed=0))).cube)  # what the pipeline makes
    for sample in (
        SampleConfig(attention="full"),
        SampleConfig(independent=True),
        SampleConfig(padding=False),
        SampleConfig(blend="one_sided"),
    ):
        other = cube_of(pipe, video, traj, 0, sample)
        assert other.shape == base.shape and not torch.equal(other, base)


def test_documented_trajectory_example_parses() -> None:
    import json

    path = Path(__file__).resolve().parents[2] / "docs" / "trajectory_example.json"
    data = json.loads(path.read_text())
    traj = parse_trajectory(data, len(data["yaw"]))
    assert len(traj) == 48 and float(traj.fov[0]) == 90.0 and float(traj.yaw[-1]) == 90.0
