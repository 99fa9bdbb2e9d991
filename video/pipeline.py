"""The public entry of VideoAR: `genmotion.load("videoar-toy")` -> `VideoARPipeline` with `stream()` (one
chunk per frame, as soon as it exists, for as long as asked) and `generate()` (stream() collected).

The pipeline composes: text encoder -> condition per frame (prompt schedule) -> sampler -> tokenizer
decoder -> uint8 frames. No math here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genmotion.checkpoint import load_weights, save_pretrained
from genmotion.config import from_dict, to_dict
from genmotion.errors import UsageError
from genmotion.pipeline import Chunk, Pipeline, Result, to_uint8
from genmotion.video.config import SamplingConfig, VideoARConfig
from genmotion.video.model import VideoAR
from genmotion.video.sampler import stream_latents

__all__ = ["PromptConditions", "VideoARPipeline", "VideoChunk", "VideoResult", "VideoStreamer", "check_prompt_schedule"]

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


def _check_sampling(num_frames: int | None, settings: SamplingConfig) -> None:
    if num_frames is not None and num_frames < 1:
        raise UsageError(f"num_frames must be >= 1, got {num_frames}", fix="ask for at least one frame")
    if settings.temperature < 0 or settings.top_k < 0 or not 0.0 <= settings.top_p <= 1.0:
        raise UsageError(
            f"bad sampling settings: temperature={settings.temperature}, top_k={settings.top_k}, "
            f"top_p={settings.top_p}",
            fix="use temperature >= 0, top_k >= 0 (0 = off) and top_p in [0, 1] (0 = off)",
        )
    for name, value in (("guidance_scale", settings.guidance_scale), ("residual_guidance", settings.residual_guidance)):
        if value is not None and value < 0:
            raise UsageError(f"{name} must be >= 0, got {value}", fix="1 means no guidance")


class VideoARPipeline(VideoStreamer):
    """Text (and a prompt schedule) -> video, frame by frame. Build with `from_pretrained` or `genmotion.load`."""

    kind = "videoar"
    model: VideoAR

    def __init__(
        self, model: VideoAR, *, encoder: Any = None, fps: float = DEFAULT_FPS, sampling: SamplingConfig | None = None
    ) -> None:
        super().__init__(model, encoder=encoder, fps=fps)
        self.config: VideoARConfig = model.config
        #: the sampling a checkpoint recommends (its config.yaml's `sampling:`); `stream` falls back to it
        self.default_sampling = sampling or SamplingConfig()

    @classmethod
    def _from_checkpoint(cls, directory: Path, config: Mapping[str, Any]) -> VideoARPipeline:
        model = VideoAR(from_dict(VideoARConfig, config["model"], prefix="model"))
        load_weights(model, directory)
        return cls(model, sampling=from_dict(SamplingConfig, config.get("sampling") or {}, prefix="sampling"))

    def save_pretrained(self, directory: str | Path, card: str | None = None) -> Path:
        config = {"kind": "videoar", "model": to_dict(self.config), "sampling": to_dict(self.default_sampling)}
        return save_pretrained(directory, self.model, config, card, torch.bfloat16)

    @property
    def height(self) -> int:
        return self.config.tokenizer.image_size

    @property
    def width(self) -> int:
        return self.config.tokenizer.image_size

    @torch.no_grad()
    def _condition(self, prompt: str) -> torch.Tensor:
        pooled = self.encoder.encode([prompt]).pooled.to(self.device, self.dtype)
        return self.model.transformer.condition(pooled)  # (1, W)

    @torch.no_grad()
    def _decode(self, fhat: torch.Tensor, prev: torch.Tensor | None) -> np.ndarray:
        image = self.model.tokenizer.decode_frame(fhat.to(self.dtype), None if prev is None else prev.to(self.dtype))
        return to_uint8(image)

    def stream(
        self,
        prompt: str | None = None,
        *,
        num_frames: int | None = 16,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        guidance_scale: float | None = None,
        guidance_schedule: str = "constant",
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.0,
        residual_guidance: float | None = None,
        prompt_schedule: Sequence[tuple[int, str]] = (),
    ) -> Iterator[VideoChunk]:
        """Yield one `VideoChunk` per frame as soon as it is decoded; `num_frames=None` streams forever.

        `prompt_schedule` lists (frame, prompt): from that frame on, the new prompt conditions what
        follows while the cached frames keep the scene. `seed` (or an explicit `generator`) fixes the draw.
        `guidance_scale` / `residual_guidance` (the guidance of the frames after the first on a temporal-residual
        model, which code changes; see `SamplingConfig`): None = what the checkpoint recommends
        (`default_sampling`, 3 and the same when it says nothing).
        """
        schedule = check_prompt_schedule(prompt, prompt_schedule)
        default = self.default_sampling
        settings = SamplingConfig(
            guidance_scale=default.guidance_scale if guidance_scale is None else guidance_scale,
            guidance_schedule=guidance_schedule,  # type: ignore[arg-type]
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            residual_guidance=default.residual_guidance if residual_guidance is None else residual_guidance,
        )
        _check_sampling(num_frames, settings)
        return self._frames(schedule, num_frames, settings, self.make_generator(seed, generator))

    def _frames(
        self,
        schedule: tuple[tuple[int, str], ...],
        num_frames: int | None,
        settings: SamplingConfig,
        generator: torch.Generator,
    ) -> Iterator[VideoChunk]:
        start = time.perf_counter()
        condition = PromptConditions(schedule, self._condition)
        prev: torch.Tensor | None = None
        for latent in stream_latents(self.model, condition, num_frames, settings, generator=generator):
            frames = self._decode(latent.fhat, prev)
            prev = latent.fhat
            yield VideoChunk(
                frames=frames,
                index=latent.index,
                prompt=condition.prompt_at(latent.index),
                cache_bytes=latent.cache_bytes,
                cache_valid_bytes=latent.cache_valid_bytes,
                seconds=time.perf_counter() - start,
            )
