"""Training and evaluation data: 360-degree clips (cube faces) of the toy world's ray-cast 3-D scenes or of the
user's equirect videos, perspective inputs filmed along random smooth camera paths inside them, and the
masked cube condition projected from those inputs exactly as at inference.

Axes: N frames, S face size, h/w perspective size. Pixels are float in [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from genmotion.data.toyworld.raycast import render_cube_faces, render_perspective
from genmotion.data.toyworld.scene3d import sample_scene
from genmotion.errors import InputError
from genmotion.panorama.geometry import equirect_to_cube, equirect_to_perspective, perspective_to_cube, rotations

__all__ = ["Clip", "PanoDataConfig", "Trajectory", "project_input", "random_trajectory", "toy_clip", "folder_clip"]


@dataclass(frozen=True, kw_only=True)
class PanoDataConfig:
    """`source` "toyworld" or a folder of equirect videos; clips of `frames` frames; perspective inputs of
    `input_size` (h, w) with a horizontal FoV in `fov_range` (degrees) along paths of 2-4 waypoints within
    +-`max_yaw` / +-`max_pitch` degrees, shaken with probability `shake_probability`."""

    source: str = "toyworld"
    frames: int = 16
    input_size: tuple[int, ...] = (36, 48)
    fov_range: tuple[float, ...] = (60.0, 120.0)
    max_yaw: float = 120.0
    max_pitch: float = 45.0
    shake_probability: float = 0.3
    shake_degrees: float = 0.2
    centre_start_probability: float = 0.5
    pool_clips: int = 48
    eval_clips: int = 4


@dataclass(frozen=True)
class Trajectory:
    """Per-frame camera angles of the input, in degrees (N,): yaw (+ right), pitch (+ up), roll, and FoV."""

    yaw: torch.Tensor
    pitch: torch.Tensor
    roll: torch.Tensor
    fov: torch.Tensor

    def __len__(self) -> int:
        return int(self.yaw.shape[0])

    def rotations(self) -> torch.Tensor:
        """Camera-to-panorama rotations (N, 3, 3)."""
        return rotations(self.yaw, self.pitch, self.roll)

    @staticmethod
    def front(frames: int, fov: float = 90.0) -> Trajectory:
        z = torch.zeros(frames)
        return Trajectory(z, z.clone(), z.clone(), torch.full((frames,), float(fov)))


@dataclass(frozen=True)
class Clip:
    """A 360 clip and its input: gt (N, 6, 3, S, S), video (N, 3, h, w), trajectory, cond/mask projected."""

    gt: torch.Tensor
    video: torch.Tensor
    trajectory: Trajectory
    cond: torch.Tensor
    mask: torch.Tensor


def _u(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def random_trajectory(g: torch.Generator, frames: int, cfg: PanoDataConfig) -> Trajectory:
    """A smooth path through 2-4 waypoints (cosine easing between them), constant FoV, optional shake."""
    k = int(torch.randint(2, 5, (), generator=g))
    points = [(_u(g, -cfg.max_yaw, cfg.max_yaw), _u(g, -cfg.max_pitch, cfg.max_pitch)) for _ in range(k)]
    if _u(g, 0, 1) < cfg.centre_start_probability:
        points[0] = (0.0, 0.0)
    s = torch.linspace(0, k - 1, frames)
    i = s.floor().clamp(max=k - 2).long()
    w = 0.5 - 0.5 * torch.cos(math.pi * (s - i))
    pts = torch.tensor(points)
    yaw_pitch = pts[i] * (1 - w[:, None]) + pts[i + 1] * w[:, None]
    if _u(g, 0, 1) < cfg.shake_probability:
        yaw_pitch = yaw_pitch + cfg.shake_degrees * torch.randn(frames, 2, generator=g)
    fov = torch.full((frames,), _u(g, *cfg.fov_range))
    return Trajectory(yaw_pitch[:, 0], yaw_pitch[:, 1], torch.zeros(frames), fov)


def project_input(video: torch.Tensor, trajectory: Trajectory, face_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The masked cube condition of a perspective video (N, 3, h, w): cond (N, 6, 3, S, S), mask (N, 6, 1, S, S)."""
    return perspective_to_cube(video, trajectory.fov, trajectory.rotations().to(video), face_size)


def toy_clip(g: torch.Generator, cfg: PanoDataConfig, face_size: int) -> Clip:
    """A ray-cast toy scene (moving objects, moving camera centre) seen as a cube and through a moving camera."""
    scene = sample_scene(g)
    frames = cfg.frames
    traj = random_trajectory(g, frames, cfg)
    times = list(range(frames))
    gt = render_cube_faces(scene, times, face_size).rgb  # (N, 6, S, S, 3)
    h, w = cfg.input_size
    views = [
        render_perspective(
            scene,
            t,
            h,
            w,
            fov_deg=float(traj.fov[t]),
            yaw=math.radians(float(traj.yaw[t])),
            pitch=math.radians(float(traj.pitch[t])),
            roll=math.radians(float(traj.roll[t])),
        ).rgb[0]
        for t in times
    ]
    video = torch.stack(views).permute(0, 3, 1, 2).float() / 127.5 - 1
    cube = gt.permute(0, 1, 4, 2, 3).float() / 127.5 - 1
    cond, mask = project_input(video, traj, face_size)
    return Clip(cube, video, traj, cond, mask)


def folder_clip(g: torch.Generator, files: list[Path], cfg: PanoDataConfig, face_size: int) -> Clip:
    """A random stretch of one of the user's equirect videos, filmed along a random path."""
    from genmotion.io import probe, read_video

    path = files[int(torch.randint(len(files), (), generator=g))]
    info = probe(path)
    if info.num_frames < cfg.frames:
        raise InputError(f"{path} has {info.num_frames} frames, fewer than data.frames={cfg.frames}")
    start = int(torch.randint(info.num_frames - cfg.frames + 1, (), generator=g))
    frames = torch.as_tensor(read_video(path, start=start, stop=start + cfg.frames)).permute(0, 3, 1, 2)
    equi = frames.float() / 127.5 - 1
    traj = random_trajectory(g, cfg.frames, cfg)
    h, w = cfg.input_size
    video = torch.cat(
        [
            equirect_to_perspective(equi[i : i + 1], float(traj.fov[i]), traj.rotations()[i : i + 1], h, w)
            for i in range(cfg.frames)
        ]
    )
    cond, mask = project_input(video, traj, face_size)
    return Clip(equirect_to_cube(equi, face_size), video, traj, cond, mask)


def video_files(folder: str | Path) -> list[Path]:
    root = Path(folder)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".mp4", ".mov", ".mkv", ".webm"))
    if not files:
        raise InputError(f"no equirect videos under {root}", fix="point data.source at a folder of .mp4 files")
    return files
