"""Toy clips as training data: a map-style dataset (clip i is fixed by (seed, split, i)), a batched
stream for fast vectorised rendering, and `write_shard`, which writes clips (MP4 or NPZ) plus a JSONL
index of captions and specs.

Splits: "train" draws specs from one seed stream and captions from the training templates; "eval"
draws other specs and captions from the held-out templates and phrases.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from genmotion.data.toyworld.captions import CaptionSplit, caption
from genmotion.data.toyworld.render import render_clips
from genmotion.data.toyworld.spec import ClipSpec, sample_clip_spec
from genmotion.errors import InputError, UsageError

__all__ = [
    "ToyClip",
    "ToyClipBatch",
    "ToyClipDataset",
    "ToyClipStream",
    "clip_generator",
    "collate_clips",
    "read_shard_index",
    "write_shard",
]

_SPLITS: dict[str, int] = {"train": 0, "eval": 1}
_MASK64 = (1 << 64) - 1


class ToyClip(NamedTuple):
    """frames uint8 (T, H, W, 3); masks uint8 (T, H, W) (0 background, k + 1 object k); caption; spec."""

    frames: torch.Tensor
    masks: torch.Tensor
    caption: str
    spec: ClipSpec


class ToyClipBatch(NamedTuple):
    """frames uint8 (B, T, H, W, 3); masks uint8 (B, T, H, W); captions and specs, B of each."""

    frames: torch.Tensor
    masks: torch.Tensor
    captions: list[str]
    specs: list[ClipSpec]


def _check_split(split: str) -> int:
    if split not in _SPLITS:
        raise UsageError(f"unknown split {split!r}", fix="use split='train' or split='eval'")
    return _SPLITS[split]


def clip_generator(seed: int, split: str, index: int, stream: int = 0) -> torch.Generator:
    """The generator of clip `index` (or batch `index` of a stream) of a split: the three numbers are
    hashed (splitmix64), so neighbouring seeds and indices give unrelated clips."""
    value = 0
    for part in (seed, _check_split(split), stream, index):
        value = ((value ^ (part & _MASK64)) + 0x9E3779B97F4A7C15) & _MASK64
        value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
        value ^= value >> 31
    return torch.Generator().manual_seed(value & ((1 << 63) - 1))


def _spec_and_caption(
    generator: torch.Generator, split: CaptionSplit, two_object_probability: float
) -> tuple[ClipSpec, str]:
    spec = sample_clip_spec(generator, two_object_probability=two_object_probability)
    return spec, caption(spec, generator, split=split)


class ToyClipDataset(Dataset[ToyClip]):
    """`num_clips` captioned clips; item i is the same on every call, machine and worker."""

    def __init__(
        self,
        num_clips: int,
        *,
        num_frames: int = 16,
        height: int = 64,
        width: int = 64,
        split: CaptionSplit = "train",
        seed: int = 0,
        two_object_probability: float = 0.3,
    ) -> None:
        _check_split(split)
        if num_clips < 0:
            raise UsageError(f"num_clips must be >= 0, got {num_clips}")
        self.num_clips, self.num_frames, self.height, self.width = num_clips, num_frames, height, width
        self.split, self.seed, self.two_object_probability = split, seed, two_object_probability

    def __len__(self) -> int:
        return self.num_clips

    def spec_and_caption(self, index: int) -> tuple[ClipSpec, str]:
        """Spec and caption of item `index` without rendering it."""
        if not 0 <= index < self.num_clips:
            raise IndexError(f"clip {index} of a dataset of {self.num_clips}")
        generator = clip_generator(self.seed, self.split, index)
        return _spec_and_caption(generator, self.split, self.two_object_probability)

    def __getitem__(self, index: int) -> ToyClip:
        spec, text = self.spec_and_caption(index)
        frames, masks = render_clips([spec], self.num_frames, self.height, self.width)
        return ToyClip(frames[0], masks[0], text, spec)


class ToyClipStream(IterableDataset[ToyClipBatch]):
    """Endless (or `num_batches`) batches rendered together, which is much faster than item by item.
    Use with DataLoader(batch_size=None); each worker renders its own batches (k, k + workers, ...)."""

    def __init__(
        self,
        batch_size: int,
        *,
        num_frames: int = 16,
        height: int = 64,
        width: int = 64,
        split: CaptionSplit = "train",
        seed: int = 0,
        num_batches: int | None = None,
        two_object_probability: float = 0.3,
    ) -> None:
        _check_split(split)
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size, self.num_frames, self.height, self.width = batch_size, num_frames, height, width
        self.split, self.seed, self.num_batches = split, seed, num_batches
        self.two_object_probability = two_object_probability

    def batch(self, index: int) -> ToyClipBatch:
        """Batch `index` of the stream (the same whichever worker renders it)."""
        generator = clip_generator(self.seed, self.split, index, stream=1)
        pairs = [_spec_and_caption(generator, self.split, self.two_object_probability) for _ in range(self.batch_size)]
        specs = [spec for spec, _ in pairs]
        frames, masks = render_clips(specs, self.num_frames, self.height, self.width)
        return ToyClipBatch(frames, masks, [text for _, text in pairs], specs)

    def __iter__(self) -> Iterator[ToyClipBatch]:
        worker = get_worker_info()
        index, step = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        while self.num_batches is None or index < self.num_batches:
            yield self.batch(index)
            index += step


def collate_clips(items: Sequence[ToyClip]) -> ToyClipBatch:
    """DataLoader collate_fn for ToyClipDataset: stacks frames and masks, lists captions and specs."""
    return ToyClipBatch(
        torch.stack([i.frames for i in items]),
        torch.stack([i.masks for i in items]),
        [i.caption for i in items],
        [i.spec for i in items],
    )


def _write_npz(path: Path, frames: torch.Tensor, masks: torch.Tensor) -> None:
    import numpy as np

    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, frames=frames.numpy(), masks=masks.numpy())
    os.replace(tmp, path)


def _write_mp4(path: Path, frames: torch.Tensor, fps: int) -> None:
    from genmotion.io.mp4 import Mp4Writer  # writes to a temporary name, renames when complete

    with Mp4Writer(path, fps, crf=18, preset="fast", odd_size="error") as writer:
        writer.write(frames)


def write_shard(
    num_clips: int,
    out_dir: str | Path,
    *,
    num_frames: int = 16,
    height: int = 64,
    width: int = 64,
    split: CaptionSplit = "train",
    seed: int = 0,
    fmt: Literal["mp4", "npz"] = "mp4",
    fps: int = 8,
    batch_size: int = 32,
) -> Path:
    """Write clips 0 .. num_clips - 1 of ToyClipDataset(seed, split) to out_dir/clips/NNNNNN.{mp4,npz}
    (NPZ holds frames and masks) and their index to out_dir/captions.jsonl, one JSON object per clip:
    {"path": "clips/000000.mp4", "caption": ..., "spec": {...}, "num_frames", "height", "width", "fps"}.
    Every file is written under a temporary name and renamed when complete. Returns the JSONL path.
    """
    if fmt not in ("mp4", "npz"):
        raise UsageError(f"unknown shard format {fmt!r}", fix="use fmt='mp4' or fmt='npz'")
    if fmt == "mp4" and (height % 2 or width % 2):
        raise UsageError(f"MP4 clips need an even size, got {height}x{width}", fix="use an even size or fmt='npz'")
    dataset = ToyClipDataset(num_clips, num_frames=num_frames, height=height, width=width, split=split, seed=seed)
    out = Path(out_dir)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    lines = []
    for start in range(0, num_clips, batch_size):
        indices = range(start, min(start + batch_size, num_clips))
        pairs = [dataset.spec_and_caption(i) for i in indices]
        frames, masks = render_clips([spec for spec, _ in pairs], num_frames, height, width)
        for j, (i, (spec, text)) in enumerate(zip(indices, pairs, strict=True)):
            relative = f"clips/{i:06d}.{fmt}"
            if fmt == "mp4":
                _write_mp4(out / relative, frames[j], fps)
            else:
                _write_npz(out / relative, frames[j], masks[j])
            record = {"path": relative, "caption": text, "spec": spec.to_dict(), "num_frames": num_frames}
            record.update(height=height, width=width, fps=fps, split=split, seed=seed, index=i)
            lines.append(json.dumps(record))
    index_path = out / "captions.jsonl"
    tmp = out / ".captions.jsonl.tmp"
    tmp.write_text("".join(line + "\n" for line in lines))
    os.replace(tmp, index_path)
    return index_path


def read_shard_index(path: str | Path) -> list[dict[str, Any]]:
    """The records of a shard's captions.jsonl (`path` is the file or its folder)."""
    file = Path(path)
    file = file / "captions.jsonl" if file.is_dir() else file
    if not file.is_file():
        raise InputError(f"no shard index at {file}", fix="point at a folder written by write_shard")
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
