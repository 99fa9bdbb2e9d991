"""The public entry of VideoAR: `genmotion.load("videoar-toy")` -> `VideoARPipeline` with `stream()` (one
chunk per frame, as soon as it exists, for as long as asked) and `generate()` (stream() collected).

The pipeline composes: text encoder -> condition per frame (prompt schedule) -> sampler -> tokenizer
decoder -> uint8 frames. No math here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genmotion.checkpoint import load_weights, save_pretrained
from genmotion.config import from_dict, to_dict
from genmotion.errors import UsageError
from genmotion.pipeline import to_uint8
from genmotion.video.streamer import (
    DEFAULT_FPS,
    PromptConditions,
    VideoChunk,
    VideoStreamer,
    check_prompt_schedule,
)
from genmotion.video.videoar.config import SamplingConfig, VideoARConfig
from genmotion.video.videoar.model import VideoAR
from genmotion.video.videoar.sampler import stream_latents

__all__ = ["VideoARPipeline"]


def _check_sampling(num_frames: int | None, settings: SamplingConfig) -> None:
    if num_frames is not None and num_frames < 1:
        raise UsageError(f"num_frames must be >= 1, got {num_frames}", fix="ask for at least one frame")
    if settings.temperature < 0 or settings.top_k < 0 or not 0.0 <= settings.top_p <= 1.0:
        raise UsageError(
            f"bad sampling settings: temperature={settings.temperature}, top_k={settings.top_k}, "
            f"top_p={settings.top_p}",
            fix="use temperature >= 0, top_k >= 0 (0 = off) and top_p in [0, 1] (0 = off)",
        )
    if not 0.0 <= settings.copy_threshold <= 1.0:
        raise UsageError(
            f"copy_threshold must be in [0, 1], got {settings.copy_threshold}",
            fix="0 turns the copy rule off; 0.5 keeps a previous code the model gives even odds or better",
        )
    if settings.copy_scales < 0:
        raise UsageError(
            f"copy_scales must be >= 0, got {settings.copy_scales}",
            fix="0 applies the copy rule at every scale; k at the k coarsest",
        )
    if settings.first_frame_candidates < 1:
        raise UsageError(
            f"first_frame_candidates must be >= 1, got {settings.first_frame_candidates}", fix="1 draws frame 0 once"
        )
    named = ("guidance_scale", "residual_guidance", "first_frame_guidance")
    for name, value in ((n, getattr(settings, n)) for n in named):
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

    def checkpoint_config(self) -> dict[str, Any]:
        """What `save_pretrained` writes as config.yaml."""
        return {"kind": "videoar", "model": to_dict(self.config), "sampling": to_dict(self.default_sampling)}

    def save_pretrained(self, directory: str | Path, card: str | None = None, *, force: bool = False) -> Path:
        return save_pretrained(directory, self.model, self.checkpoint_config(), card, torch.bfloat16, force=force)

    @property
    def cache_window_frames(self) -> int:
        c = self.model.transformer.config
        return int(c.sink_frames + c.window_frames)

    @torch.no_grad()
    def text_embedding(self, prompt: str) -> torch.Tensor:
        """The prompt encoder's pooled embedding of one prompt, (1, E), that every transformer conditions on."""
        return self.encoder.encode([prompt]).pooled.to(self.device, self.dtype)

    @torch.no_grad()
    def condition(self, prompt: str) -> torch.Tensor:
        """The main transformer's condition of one prompt, (1, W), as every frame of that prompt reads it."""
        return self.model.transformer.condition(self.text_embedding(prompt))  # (1, W)

    @torch.no_grad()
    def _decode(self, fhat: torch.Tensor, prev: torch.Tensor | None) -> np.ndarray:
        image = self.model.tokenizer.decode_frame(fhat.to(self.dtype), None if prev is None else prev.to(self.dtype))
        return to_uint8(image)

    def sampling_settings(self, **given: Any) -> SamplingConfig:
        """`SamplingConfig` of the keywords given, the checkpoint's recommendation (`default_sampling`) where a
        keyword is None or missing. A guidance_scale given without a first_frame_guidance guides frame 0 too (so
        `guidance_scale=1` turns guidance off everywhere): the recommended first-frame scale goes with the
        recommended scale."""
        chosen = {k: v for k, v in given.items() if v is not None}
        if "guidance_scale" in chosen and "first_frame_guidance" not in chosen:
            chosen["first_frame_guidance"] = None
        return replace(self.default_sampling, **chosen)

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
        first_frame_guidance: float | None = None,
        first_frame_candidates: int | None = None,
        copy_threshold: float | None = None,
        copy_scales: int | None = None,
        layout_guidance: float | None = None,
        prompt_schedule: Sequence[tuple[int, str]] = (),
    ) -> Iterator[VideoChunk]:
        """Yield one `VideoChunk` per frame as soon as it is decoded; `num_frames=None` streams forever.

        `prompt_schedule` lists (frame, prompt): from that frame on, the new prompt conditions what
        follows while the cached frames keep the scene. `seed` (or an explicit `generator`) fixes the draw.
        `guidance_scale` / `residual_guidance` (the guidance of the frames after the first on a temporal-residual
        model, which code changes; see `SamplingConfig`) / `first_frame_guidance` (frame 0's, drawn from the text
        alone) / `first_frame_candidates` (draws of frame 0 to choose from) / `copy_threshold` (the probability at
        which a token keeps the previous frame's code) / `copy_scales` (how many of the coarsest scales that rule
        acts on; 0 = all) / `layout_guidance` (the layout prior's scale, on a model
        with one): None = what the checkpoint recommends (see `sampling_settings`).
        """
        schedule = check_prompt_schedule(prompt, prompt_schedule)
        settings = self.sampling_settings(
            guidance_scale=guidance_scale, guidance_schedule=guidance_schedule, temperature=temperature, top_k=top_k,
            top_p=top_p, residual_guidance=residual_guidance, first_frame_guidance=first_frame_guidance,
            first_frame_candidates=first_frame_candidates, copy_threshold=copy_threshold, copy_scales=copy_scales,
            layout_guidance=layout_guidance,
        )  # fmt: skip
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
        condition = PromptConditions(schedule, self.text_embedding)
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
