"""Measurements of the toy world (`genmotion bench toyworld`): rendering speed of 2-D clips and 3-D views,
detector speed, and detector accuracy on clean renders, on degraded renders (blur + noise, roughly
what a small generator produces) and on two-object clips scored against their captions.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from genmotion.bench.report import bar_chart, time_median
from genmotion.data.toyworld.captions import caption
from genmotion.data.toyworld.detector import detect, score_adherence
from genmotion.data.toyworld.raycast import render_cube_faces, render_equirect, render_perspective
from genmotion.data.toyworld.render import render_clips
from genmotion.data.toyworld.scene3d import sample_scene
from genmotion.data.toyworld.spec import ClipSpec, sample_clip_specs

__all__ = ["ToyworldBenchConfig", "degrade_frames", "detector_accuracy", "plot_toyworld_bench", "run_toyworld_bench"]

_ATTRIBUTES = ("colour", "shape", "size", "motion")


@dataclass(frozen=True, kw_only=True)
class ToyworldBenchConfig:
    batch: int = 64
    num_frames: int = 16
    sizes: tuple[int, ...] = (32, 64)
    accuracy_clips: int = 200
    repeats: int = 5
    seed: int = 0

    @classmethod
    def quick(cls) -> ToyworldBenchConfig:
        return cls(batch=8, num_frames=8, sizes=(32,), accuracy_clips=10, repeats=1)


def degrade_frames(frames: torch.Tensor, generator: torch.Generator, *, noise: float = 20.0) -> torch.Tensor:
    """A 3 x 3 binomial blur and Gaussian noise of std `noise` on uint8 frames (..., H, W, 3)."""
    x = frames.float().reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2)  # (N, 3, H, W)
    kernel = torch.tensor([1.0, 2.0, 1.0])
    kernel = (kernel[:, None] * kernel[None]) / 16
    x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel.expand(3, 1, 3, 3), groups=3)
    x = x + noise * torch.randn(x.shape, generator=generator)
    return x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).reshape(frames.shape)


def detector_accuracy(specs: Sequence[ClipSpec], frames: torch.Tensor) -> dict[str, float | None]:
    """Share of one-object clips (B, T, H, W, 3) whose colour, shape, size, motion, bounce heading,
    background and object count the detector reads right (None for an attribute no clip shows, e.g. heading
    without a bouncing clip). Size is not scored for grow/shrink: it depends on the window and captions never
    state it."""
    hits = dict.fromkeys((*_ATTRIBUTES, "heading", "background", "count"), 0)
    totals = dict.fromkeys(hits, 0)
    for spec, clip in zip(specs, frames, strict=True):
        obj, found = spec.objects[0], detect(clip)
        read = found.objects[0] if found.objects else None
        for name in _ATTRIBUTES:
            if name != "size" or obj.motion not in ("grow", "shrink"):
                totals[name] += 1
                hits[name] += read is not None and getattr(read, name) == getattr(obj, name)
        if obj.motion == "bounce":
            totals["heading"] += 1
            hits["heading"] += read is not None and read.heading == obj.heading
        totals["background"] += 1
        hits["background"] += found.background == spec.background
        totals["count"] += 1
        hits["count"] += len(found.objects) == 1
    return {name: hits[name] / totals[name] if totals[name] else None for name in hits}  # None: no such clip


def _speeds(cfg: ToyworldBenchConfig, generator: torch.Generator) -> dict[str, Any]:
    specs = sample_clip_specs(cfg.batch, generator)
    out: dict[str, Any] = {}
    for size in cfg.sizes:
        seconds = time_median(partial(render_clips, specs, cfg.num_frames, size, size), 1, cfg.repeats)
        out[f"render_{cfg.batch}x{cfg.num_frames}x{size}px_ms"] = 1000 * seconds
    clip = render_clips(specs[:1], cfg.num_frames, 64, 64).frames[0]
    out["detect_clip_64px_ms"] = 1000 * time_median(lambda: detect(clip), 1, cfg.repeats)
    scene = sample_scene(generator)
    out["equirect_128x256_ms"] = 1000 * time_median(lambda: render_equirect(scene, 0, 128, 256), 1, cfg.repeats)
    out["cube_6x64_ms"] = 1000 * time_median(lambda: render_cube_faces(scene, 0, 64), 1, cfg.repeats)
    out["perspective_128_ms"] = 1000 * time_median(lambda: render_perspective(scene, 0, 128, 128), 1, cfg.repeats)
    return out


def _accuracies(cfg: ToyworldBenchConfig, generator: torch.Generator) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in cfg.sizes:
        specs = sample_clip_specs(cfg.accuracy_clips, generator, num_objects=1)
        frames = render_clips(specs, cfg.num_frames, size, size).frames
        out[f"clean_{size}px"] = detector_accuracy(specs, frames)
        out[f"degraded_{size}px"] = detector_accuracy(specs, degrade_frames(frames, generator))
    specs = sample_clip_specs(cfg.accuracy_clips, generator, num_objects=2)
    frames = render_clips(specs, cfg.num_frames, max(cfg.sizes), max(cfg.sizes)).frames
    for split in ("train", "eval"):
        scores = [score_adherence(f, caption(s, generator, split=split)) for s, f in zip(specs, frames, strict=True)]
        out[f"two_objects_{split}_captions_all"] = sum(s["all"] for s in scores) / len(scores)
    return out


def run_toyworld_bench(cfg: ToyworldBenchConfig | None = None) -> dict[str, Any]:
    """All measurements as a JSON-ready dict (times in ms, accuracies in [0, 1])."""
    cfg = cfg or ToyworldBenchConfig()
    generator = torch.Generator().manual_seed(cfg.seed)
    return {
        "config": asdict(cfg),
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "speed_ms": _speeds(cfg, generator),
        "accuracy": _accuracies(cfg, generator),
    }


def plot_toyworld_bench(results: dict[str, Any], path: str | Path) -> None:
    """Speed (ms) and accuracy (min over attributes) bars as a PNG, drawn with PIL."""
    accuracy = {
        k: min(x for x in v.values() if x is not None) if isinstance(v, dict) else v
        for k, v in results["accuracy"].items()
    }
    panels = [("speed (ms, lower is better)", results["speed_ms"]), ("detector accuracy (worst attribute)", accuracy)]
    bar_chart(panels, path)
