"""The public entry of FlexVAR: `genmotion.load("flexvar-toy")` -> `FlexVARPipeline`.

Like `VARPipeline`, `stream()` yields one `ScaleChunk` per scale (the last carries the decoded images) and
`generate()` collects an `ImageResult`; what FlexVAR adds is the schedule of each call: `num_steps` (geometric
sides from 1 to the full latent) or an explicit `schedule` of sides, and `image_size`, any multiple of the
tokenizer's downsampling (sizes over the trained one are zero-shot). No math here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from genmotion.errors import UsageError
from genmotion.image_core.config import VARSamplingConfig
from genmotion.image_core.flex_checkpoint import (
    FlexVARImageModel,
    load_flexvar_model,
    read_flexvar_metadata,
    save_flexvar_model,
)
from genmotion.image_core.flex_sampler import resolve_schedule, stream_flex_scales
from genmotion.image_core.pipeline import ClassImages, ImageResult, ScaleChunk
from genmotion.pipeline import Chunk, Pipeline, to_uint8

__all__ = ["FlexVARPipeline"]


class FlexVARPipeline(ClassImages, Pipeline):
    """Class-conditional FlexVAR images at any number of steps and image size. Build with `genmotion.load`."""

    kind = "flexvar"
    config_keys: ClassVar[frozenset[str] | None] = frozenset({"kind", "vae", "flexvar", "classes", "sampling"})
    model: FlexVARImageModel

    def __init__(
        self, model: FlexVARImageModel, *, class_names: Sequence[str] = (), sampling: VARSamplingConfig | None = None
    ) -> None:
        super().__init__(model)
        self.config = model.config
        self.class_names = tuple(class_names)
        self.sampling = sampling or VARSamplingConfig()

    @classmethod
    def _from_checkpoint(cls, directory: Path, config: Mapping[str, Any]) -> FlexVARPipeline:
        names, sampling = read_flexvar_metadata(directory)
        return cls(load_flexvar_model(directory), class_names=names, sampling=sampling)

    def save_pretrained(self, directory: str | Path, card: str | None = None) -> Path:
        return save_flexvar_model(
            self.model, directory, card=card, class_names=self.class_names, sampling=self.sampling
        )

    @property
    def downsample(self) -> int:
        """Pixels per latent cell along each side."""
        return self.config.vae.downsample

    @property
    def num_classes(self) -> int:
        return self.config.flexvar.num_classes

    def latent_side(self, image_size: int | None) -> int:
        """The latent side of an `image_size` x `image_size` image (None: the trained size)."""
        if image_size is None:
            return self.config.flexvar.latent_size
        d = self.downsample
        if image_size < d or image_size % d:
            raise UsageError(
                f"image size {image_size} is not a positive multiple of {d}",
                why=f"the tokenizer maps {d}x{d} pixels to one latent cell",
                fix=f"use e.g. {self.height} (trained) or {self.height + 4 * d}",
            )
        return image_size // d

    def schedule(
        self, *, num_steps: int | None = None, schedule: Sequence[int] | None = None, image_size: int | None = None
    ) -> tuple[int, ...]:
        """The scale sides one call samples (checked: a UsageError says why a schedule cannot be taken)."""
        side = self.latent_side(image_size)
        return resolve_schedule(self.config.flexvar, side, num_steps=num_steps, schedule=schedule)

    def _settings(self, **given: float | None) -> VARSamplingConfig:
        s = self.sampling
        try:
            return VARSamplingConfig(**{k: getattr(s, k) if v is None else v for k, v in given.items()})  # type: ignore[arg-type]
        except ValueError as e:
            raise UsageError("bad sampling settings", why=str(e), fix="e.g. --guidance 4 --top-k 0 --top-p 0") from e

    def stream(
        self,
        class_label: int | str | Sequence[int | str],
        *,
        num_images: int = 1,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        guidance_scale: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        temperature: float | None = None,
        num_steps: int | None = None,
        schedule: Sequence[int] | None = None,
        image_size: int | None = None,
        preview: bool = False,
    ) -> Iterator[ScaleChunk]:
        """Yield a `ScaleChunk` per scale of the schedule; unset sampling settings come from the checkpoint.

        `num_steps` or `schedule` (sides, from 1 to image_size / downsampling) choose the scales; `image_size`
        (default: the trained size) any multiple of the downsampling up to 4x the trained side. With `preview`,
        every scale's own map is decoded (each scale is a whole image at its size).
        """
        settings = self._settings(guidance_scale=guidance_scale, top_k=top_k, top_p=top_p, temperature=temperature)
        sizes = self.schedule(num_steps=num_steps, schedule=schedule, image_size=image_size)
        labels = self._labels(class_label, num_images)
        generator = self.make_generator(seed, generator)
        return self._scales(labels, sizes, settings, generator, preview)

    def _scales(
        self,
        labels: torch.Tensor,
        sizes: tuple[int, ...],
        settings: VARSamplingConfig,
        generator: torch.Generator,
        preview: bool,
    ) -> Iterator[ScaleChunk]:
        start, vae, K = time.perf_counter(), self.model.vae, len(sizes)
        with torch.no_grad():
            steps = stream_flex_scales(
                self.model.var,
                vae.quantize,
                labels,
                sizes,
                generator=generator,
                guidance_scale=settings.guidance_scale,
                top_k=settings.top_k,
                top_p=settings.top_p,
                temperature=settings.temperature,
            )
            for step in steps:
                last = step.scale_index == K - 1
                images = to_uint8(vae.fhat_to_image(step.code_map.to(self.dtype))) if last or preview else None
                yield ScaleChunk(
                    index=step.scale_index,
                    num_scales=K,
                    tokens=step.indices,
                    images=images,
                    cache_bytes=0,
                    seconds=time.perf_counter() - start,
                )

    def collect(self, chunks: Iterable[Chunk], seconds: float, class_label: Any = None, **options: Any) -> ImageResult:
        scales = [c for c in chunks if isinstance(c, ScaleChunk)]
        return self._image_result(scales, seconds, class_label, options.get("num_images", 1))
