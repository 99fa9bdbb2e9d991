"""The toy-world FVD yardstick: ground-truth clips of the prompts a generator was given, their features under
the toy world's own video classifier (`genmotion.data.toyworld.feature_net`), and the Fréchet distance and
object statistics of any clip set against them, with ground truth of other seeds as the floor and shuffled or
frozen frames as sanity ceilings. Also the frame-strip picture (ground truth above generated).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genmotion.video.quality import frechet_distance, set_statistics

__all__ = ["Yardstick", "frame_strip", "frozen", "ground_truth", "shuffled"]


def ground_truth(prompts: Sequence[str], *, num_frames: int, size: int, seed: int) -> tuple[np.ndarray, list[Any]]:
    """Toy-world renders of the prompts: what a prompt leaves open (place, speed, phase, unnamed attributes)
    is drawn from a generator seeded by (`seed`, prompt index). -> uint8 (N, T, size, size, 3), the specs."""
    from genmotion.data.toyworld import render_clips, spec_from_prompt

    seeds = [int(np.random.SeedSequence([seed, i]).generate_state(1)[0]) for i in range(len(prompts))]
    specs = [spec_from_prompt(p, torch.Generator().manual_seed(k)) for p, k in zip(prompts, seeds, strict=True)]
    clips = [render_clips(specs[i : i + 64], num_frames, size, size).frames for i in range(0, len(specs), 64)]
    return torch.cat(clips).numpy(), specs


def shuffled(clips: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each clip's frames in a random order (a fixed permutation per clip): every frame real, motion gone."""
    rng = np.random.default_rng(seed)
    return np.stack([c[rng.permutation(c.shape[0])] for c in clips])


def frozen(clips: np.ndarray, frame: int = 0) -> np.ndarray:
    """Each clip's frame `frame` held for the clip's length: one real frame, no motion."""
    return np.repeat(clips[:, frame : frame + 1], clips.shape[1], axis=1)


class Yardstick:
    """Scores clip sets made for `prompts` (one object each) against ground truth of the same prompts.

    `reference` is ground truth drawn with seed 1; `floor` (seed 2) is what another draw of the toy world
    itself scores, so a generator's FVD reads as a multiple of it.
    """

    def __init__(self, prompts: Sequence[str], *, num_frames: int, size: int, net: Any = None) -> None:
        from genmotion.data.toyworld.feature_net import load_feature_net

        self.prompts = list(prompts)
        self.net = net if net is not None else load_feature_net()
        self.reference, specs = ground_truth(self.prompts, num_frames=num_frames, size=size, seed=1)
        self.colours = [s.objects[0].colour for s in specs]
        self.floor_clips, _ = ground_truth(self.prompts, num_frames=num_frames, size=size, seed=2)
        self.reference_features = self.features(self.reference)

    def features(self, clips: np.ndarray) -> np.ndarray:
        from genmotion.data.toyworld.feature_net import clip_features

        return clip_features(self.net, clips)

    def fvd(self, clips: np.ndarray, count: int | None = None) -> float:
        """FVD of `clips` (made for the first len(clips) prompts) against the reference of the same prompts."""
        n = len(clips) if count is None else count
        return frechet_distance(self.features(np.asarray(clips[:n])), self.reference_features[:n])

    def score(self, clips: np.ndarray) -> dict[str, float]:
        """{"fvd", "area_variation", "pieces", "background_change", "sharpness", "missing", "clips"}."""
        clips = np.asarray(clips)
        return {
            "fvd": self.fvd(clips),
            **set_statistics(clips, self.colours[: len(clips)]),
            "clips": float(len(clips)),
        }

    def anchors(self, count: int | None = None) -> dict[str, dict[str, float]]:
        """Ground truth (reference statistics, and the floor's FVD), shuffled and frozen frames (ceilings)."""
        n = count or len(self.prompts)
        floor = self.floor_clips[:n]
        ground = self.score(floor)
        ground["fvd_reference_vs_itself"] = 0.0
        return {
            "ground_truth": ground,
            "shuffled_frames": self.score(shuffled(floor)),
            "frozen_first_frame": self.score(frozen(floor, 0)),
        }


def frame_strip(
    pairs: Sequence[tuple[str, np.ndarray, np.ndarray]], path: str | Path, *, every: int = 2, scale: int = 2
) -> Path:
    """A PNG: for each (prompt, ground truth (T, H, W, 3), generated (T, H, W, 3)), ground truth above generated,
    every `every`-th frame left to right, pixels enlarged `scale` times; written atomically."""
    from PIL import Image, ImageDraw

    label, gap = 14, 6
    h, w = pairs[0][1].shape[1] * scale, pairs[0][1].shape[2] * scale
    cols = len(range(0, pairs[0][1].shape[0], every))
    img = Image.new("RGB", (36 + cols * w, len(pairs) * (label + 2 * h + gap)), "white")
    draw, y = ImageDraw.Draw(img), 0
    for prompt, truth, made in pairs:
        draw.text((4, y + 1), prompt, fill="black")
        y += label
        for row, clip in (("GT", truth), ("gen", made)):
            draw.text((4, y + h // 2 - 5), row, fill="black")
            for j, t in enumerate(range(0, clip.shape[0], every)):
                tile = Image.fromarray(np.ascontiguousarray(clip[t])).resize((w, h), Image.Resampling.NEAREST)
                img.paste(tile, (36 + j * w, y))
            y += h
        y += gap
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp.png")
    img.save(tmp)
    tmp.replace(out)
    return out
