"""Training clips for the video tokenizer and VideoAR: the procedural toy world (rendered on the fly, captions
from the training templates) or a folder of the user's videos with a JSONL caption sidecar.

A batch is a dict: "video" float (B, T, 3, H, W) in [-1, 1], "captions" list[str] of B, and (when a prompt
encoder is given) "text" float (B, 384) pooled MiniLM embeddings.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from genmotion.errors import InputError
from genmotion.video.config import VideoDataConfig

__all__ = [
    "ClipSource",
    "FolderClips",
    "SidecarEntry",
    "ToyClips",
    "clip_source",
    "fit_frames",
    "read_sidecar",
    "to_model_range",
]

log = logging.getLogger(__name__)


def to_model_range(frames_BTHW3: torch.Tensor) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]."""
    return frames_BTHW3.movedim(-1, -3).float().div(127.5).sub(1.0)


def fit_frames(frames_THW3: Any, size: int) -> torch.Tensor:
    """Centre-crop to a square and resize (antialiased): uint8 (T, H, W, 3) -> uint8 (T, size, size, 3)."""
    x = torch.as_tensor(frames_THW3)
    T, H, W = x.shape[:3]
    side = min(H, W)
    top, left = (H - side) // 2, (W - side) // 2
    x = x[:, top : top + side, left : left + side].permute(0, 3, 1, 2).float()
    if side != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


class ClipSource(torch.utils.data.IterableDataset):
    """Endless batches from one generator seed; subclasses draw (uint8 clips (B, T, H, W, 3), captions)."""

    def __init__(self, cfg: VideoDataConfig, batch_size: int, seed: int, encoder: Any = None) -> None:
        super().__init__()
        self.cfg, self.batch_size, self.seed, self.encoder = cfg, batch_size, seed, encoder

    def draw(self, generator: torch.Generator) -> tuple[torch.Tensor, list[str]]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[dict[str, Any]]:
        generator = torch.Generator().manual_seed(self.seed)
        while True:
            clips, captions = self.draw(generator)
            batch: dict[str, Any] = {"video": to_model_range(clips), "captions": captions}
            if self.encoder is not None:
                batch["text"] = self.encoder.encode(captions).pooled.float().cpu()
            yield batch


class ToyClips(ClipSource):
    """Toy-world clips: random specs, a random start frame per batch, captions from `split`'s templates."""

    split = "train"

    def draw(self, generator: torch.Generator) -> tuple[torch.Tensor, list[str]]:
        from genmotion.data.toyworld import caption, render_clips, sample_clip_specs

        c = self.cfg
        specs = sample_clip_specs(self.batch_size, generator, two_object_probability=c.two_object_probability)
        captions = [caption(s, generator, self.split, vocabulary=c.caption_vocabulary) for s in specs]  # type: ignore[arg-type]
        start = int(torch.randint(c.max_start_frame + 1, (), generator=generator))
        frames = render_clips(specs, c.num_frames, c.image_size, c.image_size, start_frame=start).frames
        return frames, captions


@dataclass(frozen=True)
class SidecarEntry:
    path: Path
    caption: str


def read_sidecar(folder: str | Path, captions: str | Path | None = None) -> list[SidecarEntry]:
    """The `{"path", "caption"}` lines of the JSONL sidecar (default `<folder>/captions.jsonl`), checked."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"video folder {root} does not exist", fix="set data.folder to a folder of videos")
    sidecar = Path(captions) if captions else root / "captions.jsonl"
    if not sidecar.is_file():
        raise InputError(
            f"caption sidecar {sidecar} does not exist",
            why="training on your videos needs one caption per video",
            fix='write one JSON object per line: {"path": "clip.mp4", "caption": "a red ball moving left"}',
        )
    entries = []
    for number, line in enumerate(sidecar.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            path, text = root / str(row["path"]), str(row["caption"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise InputError(
                f"{sidecar}:{number} is not a caption line",
                why=f"{type(e).__name__}: {e}",
                fix='each line must be a JSON object with "path" and "caption"',
            ) from e
        if not path.exists():
            raise InputError(f"{sidecar}:{number} names {path}, which does not exist", fix="fix the path")
        if not text.strip():
            raise InputError(f"{sidecar}:{number} has an empty caption", fix="describe the video in a few words")
        entries.append(SidecarEntry(path, text))
    if not entries:
        raise InputError(f"{sidecar} lists no videos", fix="add one JSON line per video")
    return entries


class FolderClips(ClipSource):
    """Clips of `num_frames` (every `frame_stride`-th frame) from the user's videos, decoded once and kept
    in memory at the model's resolution (genmotion.io: decord when installed, else PyAV)."""

    def __init__(self, cfg: VideoDataConfig, batch_size: int, seed: int, encoder: Any = None) -> None:
        super().__init__(cfg, batch_size, seed, encoder)
        assert cfg.folder is not None  # checked by VideoDataConfig
        self.entries = read_sidecar(cfg.folder, cfg.captions)
        self._videos: dict[int, torch.Tensor] = {}

    def video(self, index: int) -> torch.Tensor:
        """uint8 (T, size, size, 3) of entry `index`, at least `span` frames (shorter videos loop)."""
        from genmotion.io import read_video

        if index not in self._videos:
            entry = self.entries[index]
            frames = fit_frames(read_video(entry.path), self.cfg.image_size)
            if frames.shape[0] == 0:
                raise InputError(f"{entry.path} has no frames", fix="remove it from the sidecar")
            span = (self.cfg.num_frames - 1) * self.cfg.frame_stride + 1
            if frames.shape[0] < span:
                log.info("%s has %d frames; looping it to %d", entry.path, frames.shape[0], span)
                frames = frames.repeat((span + frames.shape[0] - 1) // frames.shape[0], 1, 1, 1)
            self._videos[index] = frames
        return self._videos[index]

    def draw(self, generator: torch.Generator) -> tuple[torch.Tensor, list[str]]:
        c = self.cfg
        span = (c.num_frames - 1) * c.frame_stride + 1
        clips, captions = [], []
        for i in torch.randint(len(self.entries), (self.batch_size,), generator=generator).tolist():
            frames = self.video(i)
            start = int(torch.randint(frames.shape[0] - span + 1, (), generator=generator))
            clips.append(frames[start : start + span : c.frame_stride])
            captions.append(self.entries[i].caption)
        return torch.stack(clips), captions


def clip_source(cfg: VideoDataConfig, batch_size: int, seed: int, encoder: Any = None) -> ClipSource:
    """The clip stream `cfg.source` names."""
    cls = ToyClips if cfg.source == "toyworld" else FolderClips
    return cls(cfg, batch_size, seed, encoder)
