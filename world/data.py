"""Clips of the toy world's ray-cast 3-D scenes (moving objects, moving camera) with per-pixel depth,
normals and semantic segmentation, rendered once and cached as `.npz`; batches for every VFMF task."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genmotion.data.toyworld.raycast import render_perspective
from genmotion.data.toyworld.scene3d import sample_scene

__all__ = [
    "CLASS_NAMES",
    "ClipSet",
    "ClipSpec",
    "frames_to_tensor",
    "load_clips",
    "render_clips",
    "semantic_classes",
    "sequence_batches",
    "write_demo_clip",
]

log = logging.getLogger(__name__)

CLASS_NAMES = ("sky", "ground", "sphere", "box")


@dataclass(frozen=True, kw_only=True)
class ClipSpec:
    """`num_scenes` scenes of `num_frames` frames each, `frame_step` scene frames apart, `size` x `size`
    pixels, horizontal field of view `fov_deg`; scene i is drawn from a generator seeded `seed * 100003 + i`."""

    num_scenes: int = 300
    num_frames: int = 24
    frame_step: int = 2
    size: int = 64
    fov_deg: float = 70.0
    seed: int = 0

    def key(self) -> str:
        text = f"{self.num_scenes}-{self.num_frames}-{self.frame_step}-{self.size}-{self.fov_deg}-{self.seed}-v1"
        return hashlib.sha1(text.encode()).hexdigest()[:10]


@dataclass(frozen=True, kw_only=True)
class ClipSet:
    """rgb uint8 (S, T, H, W, 3); depth float32 (S, T, H, W) along the ray; normals float32 (S, T, H, W, 3)
    world frame, zero on the sky; classes int64 (S, T, H, W) indexing CLASS_NAMES."""

    rgb: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    classes: np.ndarray

    @property
    def num_scenes(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.rgb.shape[1])


def semantic_classes(instance_ids: torch.Tensor, num_spheres: int) -> torch.Tensor:
    """Instance ids (0 sky, 1 ground, then spheres, then boxes) -> classes 0 sky, 1 ground, 2 sphere, 3 box."""
    out = instance_ids.clone()
    out[(instance_ids >= 2) & (instance_ids < 2 + num_spheres)] = 2
    out[instance_ids >= 2 + num_spheres] = 3
    return out


def render_clips(spec: ClipSpec) -> ClipSet:
    """Render every scene of `spec` (about 5 ms a frame at 64 x 64)."""
    rgb, depth, normals, classes = [], [], [], []
    times = [float(i * spec.frame_step) for i in range(spec.num_frames)]
    for i in range(spec.num_scenes):
        scene = sample_scene(torch.Generator().manual_seed(spec.seed * 100003 + i))
        view = render_perspective(scene, times, spec.size, spec.size, fov_deg=spec.fov_deg)
        rgb.append(view.rgb.numpy())
        depth.append(view.depth.numpy().astype(np.float16))
        normals.append(view.normals.numpy().astype(np.float16))
        classes.append(semantic_classes(view.segmentation, len(scene.spheres)).numpy().astype(np.uint8))
    return ClipSet(
        rgb=np.stack(rgb),
        depth=np.stack(depth).astype(np.float32),
        normals=np.stack(normals).astype(np.float32),
        classes=np.stack(classes).astype(np.int64),
    )


def load_clips(spec: ClipSpec, cache_dir: str | Path | None = "runs/world/data") -> ClipSet:
    """`render_clips(spec)`, cached under `cache_dir` (None: no cache)."""
    if cache_dir is None:
        return render_clips(spec)
    path = Path(cache_dir) / f"clips-{spec.key()}.npz"
    if path.is_file():
        with np.load(path) as z:
            return ClipSet(
                rgb=z["rgb"],
                depth=z["depth"].astype(np.float32),
                normals=z["normals"].astype(np.float32),
                classes=z["classes"].astype(np.int64),
            )
    log.info("rendering %d toy-world clips of %d frames", spec.num_scenes, spec.num_frames)
    clips = render_clips(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        rgb=clips.rgb,
        depth=clips.depth.astype(np.float16),
        normals=clips.normals.astype(np.float16),
        classes=clips.classes.astype(np.uint8),
    )
    tmp.replace(path)
    return clips


def write_demo_clip(path: str | Path, *, seed: int = 0, frames: int = 4, size: int = 64, fps: float = 4.0) -> Path:
    """Write `frames` frames of toy-world scene `seed` (held out from training for seeds >= 1000) as a video."""
    from genmotion.io import open_video_writer

    clips = render_clips(ClipSpec(num_scenes=1, num_frames=frames, size=size, seed=seed))
    with open_video_writer(path, fps) as writer:
        writer.write(clips.rgb[0])
    return Path(path)


def frames_to_tensor(rgb_THW3: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 frames (..., H, W, 3) -> float images (..., 3, H, W) in [-1, 1]."""
    x = torch.as_tensor(np.asarray(rgb_THW3)).float()
    return (x / 127.5 - 1).movedim(-1, -3).contiguous()


def sequence_batches(
    latents_STNC: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    *,
    min_length: int = 2,
    max_length: int = 5,
    max_skip: int = 3,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless training sequences: each batch draws one length L in [min_length, max_length] and, per clip,
    a random stride 1 + U{0..max_skip} and start. Yields (latents (B, L, N, C), frame positions (B, L))."""
    S, T = latents_STNC.shape[:2]
    while True:
        length = int(torch.randint(min_length, max_length + 1, (), generator=generator))
        scene = torch.randint(0, S, (batch_size,), generator=generator)
        stride = 1 + torch.randint(0, max_skip + 1, (batch_size,), generator=generator)
        stride = torch.minimum(stride, torch.full_like(stride, (T - 1) // max(1, length - 1)))
        span = (length - 1) * stride
        start = (torch.rand(batch_size, generator=generator) * (T - span).float()).long()
        steps = torch.arange(length)
        index = start[:, None] + steps[None] * stride[:, None]  # (B, L)
        yield latents_STNC[scene[:, None], index], steps[None].expand(batch_size, length).clone()
