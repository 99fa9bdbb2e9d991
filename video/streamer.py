"""What the video generators' pipelines share: `VideoStreamer` (a `Pipeline` whose `stream()` yields one
`VideoChunk` per frame and whose `generate()` collects them into a `VideoResult`), prompt schedules and the
per-frame text condition. VideoAR's and Ca2-VDM's pipelines derive from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from genmotion.errors import UsageError
from genmotion.pipeline import Chunk, Pipeline, Result

__all__ = ["DEFAULT_FPS", "PromptConditions", "VideoChunk", "VideoResult", "VideoStreamer", "check_prompt_schedule"]

DEFAULT_FPS = 12.0


@dataclass(frozen=True, kw_only=True)
class VideoChunk(Chunk):
    """Frames made by one step of `stream()`: uint8 (T, H, W, 3) starting at frame `index`.

    `prompt` is the prompt in effect; `cache_bytes` the exact bytes the KV cache has allocated (static) and
    `cache_valid_bytes` those its entries fill after these frames (flat once the window is full);
    `seconds` the time since `stream()` was called.
    """

    frames: np.ndarray
    prompt: str
    cache_bytes: int
    cache_valid_bytes: int


@dataclass(frozen=True, kw_only=True)
class VideoResult(Result):
    """A finished video: uint8 (N, H, W, 3) frames, the prompt schedule that made them, and timings."""

    frames: np.ndarray
    fps: float
    prompt_schedule: tuple[tuple[int, str], ...]
    seed: int | None
    time_to_first_frame: float

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def check_prompt_schedule(prompt: str | None, schedule: Sequence[tuple[int, str]]) -> tuple[tuple[int, str], ...]:
    """(frame, prompt) pairs from frame 0 on, sorted; every prompt non-empty. Raises UsageError otherwise."""
    entries = [(0, prompt)] if prompt is not None else []
    entries += [(int(f), p) for f, p in schedule]
    if not entries:
        raise UsageError("no prompt given", fix='pass prompt="a red ball bouncing to the left"')
    for frame, text in entries:
        if not isinstance(text, str) or not text.strip():
            raise UsageError(f"the prompt for frame {frame} is empty", fix="describe the video in a few words")
        if frame < 0:
            raise UsageError(f"prompt schedule frame {frame} is negative", fix="use frame indices >= 0")
    frames = [f for f, _ in entries]
    if len(set(frames)) != len(frames):
        raise UsageError(f"two prompts start at the same frame: {sorted(frames)}", fix="give each frame one prompt")
    entries.sort()
    if entries[0][0] != 0:
        raise UsageError("no prompt for frame 0", fix="pass prompt=... or a schedule entry at frame 0")
    return tuple((f, p.strip()) for f, p in entries)


class PromptConditions:
    """The prompt in effect at a frame of a checked schedule, and its condition, encoded once per prompt."""

    def __init__(self, schedule: tuple[tuple[int, str], ...], encode: Callable[[str], torch.Tensor]) -> None:
        self.schedule, self.encode = schedule, encode
        self._cache: dict[str, torch.Tensor] = {}

    def prompt_at(self, frame: int) -> str:
        return [p for f, p in self.schedule if f <= frame][-1]

    def __call__(self, frame: int) -> torch.Tensor:
        text = self.prompt_at(frame)
        if text not in self._cache:
            self._cache[text] = self.encode(text)
        return self._cache[text]


class VideoStreamer(Pipeline):
    """What every text-to-video pipeline shares: the model in eval mode, the prompt encoder, the frame rate,
    and `collect()`: the chunks of one `stream()` as one `VideoResult` (`generate()` comes from `Pipeline`)."""

    def __init__(self, model: nn.Module, *, encoder: Any = None, fps: float = DEFAULT_FPS) -> None:
        super().__init__(model)
        self._encoder = encoder
        self.fps = fps

    @property
    def encoder(self) -> Any:
        """The prompt encoder, loaded on first use (a pipeline that is only saved or moved never loads it)."""
        if self._encoder is None:
            from genmotion.text import PromptEncoder

            self._encoder = PromptEncoder(device=self.device)
        return self._encoder

    @encoder.setter
    def encoder(self, encoder: Any) -> None:
        self._encoder = encoder

    def to(self, device: Any = None, dtype: Any = None) -> Any:
        super().to(device=device, dtype=dtype)
        if self._encoder is not None and device is not None:
            self._encoder = None  # re-made on the new device on first use
        return self

    @property
    def height(self) -> int:
        """Frame height in pixels: the tokenizer's (square) image size."""
        config: Any = self.model.config  # VideoARConfig / Ca2VDMConfig: both hold the tokenizer's
        return int(config.tokenizer.image_size)

    @property
    def width(self) -> int:
        """Frame width in pixels (= height)."""
        return self.height

    def condition(self, prompt: str) -> torch.Tensor:
        """The model's condition of one prompt, (1, W), as every frame of that prompt reads it."""
        raise NotImplementedError(f"{type(self).__name__} does not define condition()")

    @property
    def cache_window_frames(self) -> int:
        """Frames of context after which the stream's cache stops growing."""
        raise NotImplementedError(f"{type(self).__name__} does not define cache_window_frames")

    def generate(self, prompt: str | None = None, *, num_frames: int | None = 16, **kwargs: Any) -> VideoResult:
        """`stream()` collected into one `VideoResult` (same arguments); `num_frames` must be finite."""
        if num_frames is None:
            raise UsageError(
                "generate() needs a finite num_frames", fix="use stream(num_frames=None) to stream forever"
            )
        return super().generate(prompt, num_frames=num_frames, **kwargs)  # type: ignore[return-value]

    def collect(
        self,
        chunks: Iterable[Chunk],
        seconds: float,
        prompt: str | None = None,
        *,
        seed: int | None = None,
        prompt_schedule: Sequence[tuple[int, str]] = (),
        **_: Any,
    ) -> VideoResult:
        video = [c for c in chunks if isinstance(c, VideoChunk)]
        return VideoResult(
            frames=np.concatenate([c.frames for c in video]),
            fps=self.fps,
            prompt_schedule=check_prompt_schedule(prompt, prompt_schedule),
            seed=seed,
            time_to_first_frame=video[0].seconds,
            seconds=seconds,
        )
