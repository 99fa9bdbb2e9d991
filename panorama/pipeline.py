"""The panorama pipeline: a perspective video and its camera path in, windows of 360-degree frames out
(CubeComposer, Li et al., CVPR 2026): the input is projected onto the cube, the sampler generates the
cube window by window, the renderer makes output frames at the requested size and format."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from genmotion.checkpoint import load_weights, save_pretrained
from genmotion.config import from_dict, to_dict
from genmotion.errors import InputError, UsageError
from genmotion.panorama.config import CubeComposerConfig, SampleConfig, check_fov, output_size
from genmotion.panorama.data import Trajectory, project_input
from genmotion.panorama.export import OutputFormat
from genmotion.panorama.model import CubeComposerModel
from genmotion.panorama.render import PanoramaRenderer
from genmotion.panorama.sampler import CubeComposerSampler
from genmotion.panorama.trajectory import parse_trajectory
from genmotion.pipeline import Chunk, Pipeline, Result

__all__ = ["KIND", "CubeComposerPipeline", "PanoramaChunk", "PanoramaResult"]

KIND = "cubecomposer"
_FORMATS = ("equirect", "cubemap", "frames")


@dataclass(frozen=True, kw_only=True)
class PanoramaChunk(Chunk):
    """One finished window: `frames` uint8 (T, H, W, 3) from frame `start`, and the generated cube
    (T, 6, 3, S, S) in [-1, 1] at the model's face size."""

    start: int
    frames: np.ndarray
    cube: torch.Tensor
    order: tuple[int, ...] = ()


@dataclass(frozen=True, kw_only=True)
class PanoramaResult(Result):
    """All frames (N, H, W, 3) uint8 and the generated cubes (N, 6, 3, S, S)."""

    frames: np.ndarray
    cube: torch.Tensor
    orders: list[tuple[int, ...]] = field(default_factory=list)


def as_video(video: Any) -> torch.Tensor:
    """uint8 frames (N, H, W, 3) (numpy or torch) -> float (N, 3, H, W) in [-1, 1]."""
    x = torch.as_tensor(np.asarray(video))
    if x.dim() != 4 or x.shape[-1] != 3 or x.shape[0] < 1:
        raise InputError(f"video must be uint8 frames (N, H, W, 3), got shape {tuple(x.shape)}")
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1


class CubeComposerPipeline(Pipeline):
    """`genmotion.load("cubecomposer-toy").stream(video=..., trajectory=..., size="1k")`."""

    kind = KIND
    config_keys = frozenset({"kind", "model", "fps", "input_size"})

    def __init__(self, model: CubeComposerModel, *, fps: float = 8.0, input_size: tuple[int, int] = (36, 48)):
        super().__init__(model)
        self.config: CubeComposerConfig = model.config
        self.fps, self.input_size = float(fps), (int(input_size[0]), int(input_size[1]))

    @classmethod
    def _from_checkpoint(cls, directory: Path, config: Mapping[str, Any]) -> CubeComposerPipeline:
        model_cfg = from_dict(CubeComposerConfig, config.get("model", {}), prefix="model")
        model = load_weights(CubeComposerModel(model_cfg), directory, dtype=torch.float32)
        size = config.get("input_size", [36, 48])
        return cls(model, fps=float(config.get("fps", 8.0)), input_size=(int(size[0]), int(size[1])))

    def save_pretrained(self, directory: str | Path, card: str | None = None) -> Path:
        cfg = {"kind": KIND, "model": to_dict(self.config), "fps": self.fps, "input_size": list(self.input_size)}
        return save_pretrained(directory, self.model, cfg, card=card, dtype=torch.bfloat16, force=True)

    def condition(self, video: torch.Tensor, trajectory: Trajectory) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's cube condition: the input resized (antialiased) to the training input size, projected."""
        h, w = self.input_size
        small = F.interpolate(video, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
        return project_input(small, trajectory, self.config.face_size)

    def _check(self, video: Any, trajectory: Any, size: str, fov: float, format: str) -> tuple[Any, ...]:
        if format not in _FORMATS:
            raise UsageError(f"unknown format {format!r}", fix=f"use one of {', '.join(_FORMATS)}")
        dims = output_size(size)
        check_fov(fov, "fov")
        frames = as_video(video)
        n = frames.shape[0]
        if trajectory is None:
            traj = Trajectory.front(n, fov)
        elif isinstance(trajectory, Trajectory):
            if len(trajectory) != n:
                raise InputError(f"the trajectory has {len(trajectory)} frames but the video has {n}")
            traj = trajectory
        else:
            traj = parse_trajectory(trajectory, n, fov)
        return frames, traj, dims

    def stream(
        self,
        video: Any,
        trajectory: Any = None,
        *,
        size: str = "1k",
        fov: float = 90.0,
        format: OutputFormat = "equirect",
        seed: int | None = None,
        generator: torch.Generator | None = None,
        sample: SampleConfig | None = None,
    ) -> Iterator[PanoramaChunk]:
        """Yield each window of output frames as soon as it is made. `video`: uint8 (N, H, W, 3); `trajectory`:
        None (looking at the front face), a `Trajectory`, or the JSON object of the trajectory file."""
        frames, traj, dims = self._check(video, trajectory, size, fov, format)
        gen = self.make_generator(seed, generator)
        return self._stream(frames, traj, dims, format, gen, sample or SampleConfig())

    def _stream(
        self, frames: torch.Tensor, traj: Trajectory, dims: tuple[int, int], fmt: OutputFormat, gen: Any, sample: Any
    ) -> Iterator[PanoramaChunk]:
        start = time.perf_counter()
        frames = frames.to(self.device)
        cond, mask = self.condition(frames, traj)
        renderer = PanoramaRenderer(fmt, dims, self.config.face_size)
        rotations = traj.rotations()
        self.sampler = CubeComposerSampler(self.model, sample)
        for win in self.sampler.stream(cond, mask, gen):
            cube = win.cube.float().cpu()
            out = np.stack(
                [
                    renderer.frame(cube[i], frames[t].cpu(), float(traj.fov[t]), rotations[t])
                    for i, t in enumerate(range(win.start, win.end))
                ]
            )
            yield PanoramaChunk(
                index=win.index,
                seconds=time.perf_counter() - start,
                start=win.start,
                frames=out,
                cube=cube,
                order=win.order,
            )

    def collect(self, chunks: Iterable[Chunk], seconds: float, *args: Any, **kwargs: Any) -> PanoramaResult:
        parts = [c for c in chunks if isinstance(c, PanoramaChunk)]
        return PanoramaResult(
            seconds=seconds,
            frames=np.concatenate([c.frames for c in parts]),
            cube=torch.cat([c.cube for c in parts]),
            orders=[c.order for c in parts],
        )

    @property
    def height(self) -> int:
        return OUTPUT_HEIGHT

    @property
    def width(self) -> int:
        return 2 * OUTPUT_HEIGHT


OUTPUT_HEIGHT = 512  # of the default size (1k)
