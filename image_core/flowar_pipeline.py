"""The public entry of FlowAR: `genmotion.load("flowar-toy")` -> `FlowARPipeline`.

Same shape as `VARPipeline`: `stream()` yields one `FlowARChunk` per scale (the last carries the decoded
images), `generate()` collects them into an `ImageResult`; `class_id`, `class_names`, `width`, `height` and
`config.var.patch_nums` are what `genmotion image` reads. No math here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genmotion.errors import UsageError
from genmotion.image_core.flowar_config import FLOWAR_KIND, FlowARSamplingConfig
from genmotion.image_core.flowar_model import (
    FlowARImageModel,
    load_flowar_model,
    read_flowar_metadata,
    save_flowar_model,
)
from genmotion.image_core.flowar_sampler import stream_flowar_scales
from genmotion.image_core.pipeline import ClassImages, ImageResult
from genmotion.pipeline import Chunk, Pipeline, to_uint8

__all__ = ["FlowARChunk", "FlowARPipeline"]

# VAR sampling options FlowAR has no use for: accepted at their neutral values only, so a caller written for
# VARPipeline gets one clear error instead of a silently ignored setting.
_VAR_ONLY = {"top_k": None, "top_p": None, "temperature": None, "kv": "full", "image": None, "mask": None}


@dataclass(frozen=True, kw_only=True)
class FlowARChunk(Chunk):
    """One scale `index`: its normalised latent tokens (B, pn*pn, C), and uint8 images (B, H, W, 3) on the last
    scale (on every scale with `preview=True`: that scale's latent upsampled and decoded)."""

    num_scales: int
    tokens: torch.Tensor
    images: np.ndarray | None

    @property
    def is_last(self) -> bool:
        return self.index == self.num_scales - 1


class FlowARPipeline(ClassImages, Pipeline):
    """Class-conditional FlowAR images. Build with `from_pretrained` or `genmotion.load`."""

    kind = FLOWAR_KIND
    config_keys = frozenset({"kind", "vae", "flowar", "classes", "sampling"})
    model: FlowARImageModel

    _stream_scales = staticmethod(stream_flowar_scales)  # the sampler of this kind's model

    def __init__(
        self,
        model: FlowARImageModel,
        *,
        class_names: Sequence[str] = (),
        sampling: FlowARSamplingConfig | None = None,
        compute_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(model)
        self.config = model.config
        self.class_names = tuple(class_names)
        self.sampling = sampling or FlowARSamplingConfig()
        self.compute_dtype = compute_dtype

    @classmethod
    def _from_checkpoint(cls, directory: Path, config: Mapping[str, Any]) -> FlowARPipeline:
        names, sampling = read_flowar_metadata(directory)
        return cls(load_flowar_model(directory), class_names=names, sampling=sampling)

    def to(self, device: Any = None, dtype: Any = None) -> FlowARPipeline:
        super().to(device=device, dtype=dtype)
        if dtype is not None:
            self.compute_dtype = dtype
        return self

    def save_pretrained(self, directory: str | Path, card: str | None = None) -> Path:
        return save_flowar_model(self.model, directory, card=card, class_names=self.class_names, sampling=self.sampling)

    @property
    def num_classes(self) -> int:
        return self.config.flowar.num_classes

    def settings(
        self, guidance_scale: float | None, guidance_interval: float | None, num_steps: int | None
    ) -> FlowARSamplingConfig:
        """The checkpoint's sampling settings with the given ones replacing them; bad values are a UsageError."""
        s = self.sampling
        try:
            return FlowARSamplingConfig(
                guidance_scale=s.guidance_scale if guidance_scale is None else guidance_scale,
                guidance_interval=s.guidance_interval if guidance_interval is None else guidance_interval,
                num_steps=s.num_steps if num_steps is None else num_steps,
            )
        except ValueError as e:
            raise UsageError(
                "bad FlowAR sampling settings", why=str(e), fix="e.g. --guidance 3 (num_steps >= 1)"
            ) from e

    def stream(
        self,
        class_label: int | str | Sequence[int | str],
        *,
        num_images: int = 1,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        guidance_scale: float | None = None,
        guidance_interval: float | None = None,
        num_steps: int | None = None,
        preview: bool = False,
        **var_options: Any,
    ) -> Iterator[FlowARChunk]:
        """Yield a `FlowARChunk` per scale. Unset settings come from the checkpoint (`sampling:`).

        `guidance_scale`: cfg, ramped over the scales; `guidance_interval`: guidance only at flow times t <= it;
        `num_steps`: Euler steps per scale. VAR's top_k/top_p/temperature/kv/kv_budget/image/mask are accepted
        only unset (FlowAR draws continuous tokens and has no in-painting here).
        """
        for name, value in var_options.items():
            if name == "kv_budget":
                continue
            if name not in _VAR_ONLY:
                raise TypeError(f"FlowARPipeline.stream() got an unexpected keyword argument {name!r}")
            if value != _VAR_ONLY[name]:
                raise UsageError(
                    f"FlowAR does not take {name}={value!r}",
                    why="it draws continuous tokens with a flow head (no logits to filter, one full KV cache, "
                    "no in-painting)",
                    fix=f"drop {name} (FlowAR's settings: guidance_scale, guidance_interval, num_steps)",
                )
        settings = self.settings(guidance_scale, guidance_interval, num_steps)
        labels = self._labels(class_label, num_images)
        generator = self.make_generator(seed, generator)
        return self._scales(labels, settings, generator, preview)

    def _scales(
        self, labels: torch.Tensor, settings: FlowARSamplingConfig, generator: torch.Generator, preview: bool
    ) -> Iterator[FlowARChunk]:
        start = time.perf_counter()
        autocast = torch.autocast(
            self.device.type, dtype=self.compute_dtype, enabled=self.compute_dtype != torch.float32
        )
        K, size = len(self.config.flowar.patch_nums), self.config.vae.latent_size
        with torch.no_grad(), autocast:
            for step in self._stream_scales(self.model, labels, generator=generator, settings=settings):
                images = None
                if step.scale_index == K - 1 or preview:
                    latent = torch.nn.functional.interpolate(step.latent, size=(size, size), mode="bicubic")
                    images = to_uint8(self.model.vae.decode(self.model.denormalise(latent).to(self.dtype)))
                yield FlowARChunk(
                    index=step.scale_index,
                    num_scales=K,
                    tokens=step.latent.flatten(2).transpose(1, 2),
                    images=images,
                    seconds=time.perf_counter() - start,
                )

    def collect(self, chunks: Iterable[Chunk], seconds: float, class_label: Any = None, **options: Any) -> ImageResult:
        scales = [c for c in chunks if isinstance(c, FlowARChunk)]
        return self._image_result(scales, seconds, class_label, options.get("num_images", 1))
