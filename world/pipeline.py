"""`genmotion.load("vfmf-toy")`: the VFMF world-model pipeline. It encodes context frames to feature
latents, forecasts future latents (K stochastic samples, streamed frame by frame) and decodes each to
segmentation, depth, surface normals and RGB."""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from genmotion.checkpoint import load_weights, read_checkpoint_config, save_pretrained
from genmotion.config import from_dict, to_dict
from genmotion.errors import InputError, UsageError
from genmotion.pipeline import Chunk, Pipeline, Result, to_uint8
from genmotion.world.config import ForecasterConfig, VFMFConfig
from genmotion.world.data import frames_to_tensor
from genmotion.world.forecaster import SpaceTimeForecaster
from genmotion.world.model import VFMFModel
from genmotion.world.sampler import forecast_stream

__all__ = ["MIN_CONTEXT", "VFMFPipeline", "WorldChunk", "WorldResult"]

MIN_CONTEXT = 2  # frames: the forecaster was trained on 1-4 context frames; 2 are needed to see motion


@dataclass(frozen=True, kw_only=True)
class WorldChunk(Chunk):
    """Future frame `index` (0 = the first after the context) for each of S samples: rgb uint8 (S, H, W, 3),
    segmentation int64 (S, H, W) class ids, depth float32 (S, H, W), normals float32 (S, H, W, 3),
    latents float32 (S, N, K)."""

    rgb: np.ndarray
    segmentation: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    latents: np.ndarray


@dataclass(frozen=True, kw_only=True)
class WorldResult(Result):
    """The forecast of every sample: frames uint8 (S, T, H, W, 3) RGB, segmentation (S, T, H, W),
    depth (S, T, H, W), normals (S, T, H, W, 3), latents (S, T, N, K)."""

    frames: np.ndarray
    segmentation: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    latents: np.ndarray


def _check_count(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise UsageError(f"{name} must be an integer >= {low}, got {value!r}", fix=f"pass {name}={max(low, 1)} or more")
    return int(value)


class VFMFPipeline(Pipeline):
    """Feature forecasting world model; `stream(context=frames, horizon=, num_samples=)`."""

    kind: ClassVar[str] = "vfmf"
    config_keys = frozenset({"kind", "model"})
    fps: float = 8.0

    def __init__(self, model: VFMFModel) -> None:
        super().__init__(model)
        self.model: VFMFModel = model

    @property
    def height(self) -> int:
        return self.model.image_size

    @property
    def width(self) -> int:
        return self.model.image_size

    @classmethod
    def _from_checkpoint(cls, directory: Path, config: Mapping[str, Any]) -> VFMFPipeline:
        model = VFMFModel(from_dict(VFMFConfig, config["model"], prefix="model"))
        load_weights(model, directory)
        return cls(model)

    def save_pretrained(self, directory: str | Path, card: str | None = None) -> Path:
        config = {"kind": self.kind, "model": to_dict(self.model.config)}
        return save_pretrained(directory, self.model, config, card=card, dtype=torch.bfloat16)

    def with_forecaster(self, directory: str | Path) -> VFMFPipeline:
        """A copy whose forecaster (and latent kind) come from a `vfmf-forecaster` checkpoint directory (the
        baselines shipped next to the default, e.g. `baselines/regression`)."""
        cfg = read_checkpoint_config(directory)
        fc = from_dict(ForecasterConfig, cfg["forecaster"], prefix="forecaster")
        forecaster = SpaceTimeForecaster(fc)
        load_weights(forecaster, directory)
        model = copy.copy(self.model)
        nn_modules = dict(model._modules)
        nn_modules["forecaster"] = forecaster.to(device=self.device, dtype=self.dtype).eval()
        model._modules = nn_modules
        model.config = dataclasses.replace(self.model.config, forecaster=fc, latent=str(cfg["latent"]))  # type: ignore[arg-type]
        return VFMFPipeline(model)

    # ------------------------------------------------------------------------------------------ inputs
    def prepare_context(self, context: Any) -> torch.Tensor:
        """uint8 frames (T, H, W, 3) (array or tensor) -> images (T, 3, S, S) in [-1, 1] at the model size."""
        frames = np.asarray(context)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise InputError(f"context must be frames shaped (T, H, W, 3), got {frames.shape}", fix="pass RGB frames")
        if frames.shape[0] < MIN_CONTEXT:
            raise InputError(
                f"the context has {frames.shape[0]} frame(s); VFMF needs at least {MIN_CONTEXT}",
                why="the forecaster reads motion from the frames before the future",
                fix=f"pass {MIN_CONTEXT}-{self.model.config.forecaster.max_context} context frames",
            )
        images = frames_to_tensor(frames.astype(np.uint8)).to(self.device, self.dtype)
        size = self.model.image_size
        if images.shape[-2:] != (size, size):
            images = torch.nn.functional.interpolate(images, size=(size, size), mode="area")
        return images

    @torch.no_grad()
    def decode_latents(self, latents_BNK: torch.Tensor) -> dict[str, np.ndarray]:
        """Latent frames (B, N, K) -> rgb, segmentation, depth, normals (numpy, see `WorldChunk`)."""
        return self.decode_features(self.model.from_latent(latents_BNK))

    @torch.no_grad()
    def decode_features(self, features_BhwF: torch.Tensor) -> dict[str, np.ndarray]:
        out = self.model.decode_features(features_BhwF)
        return {
            "rgb": to_uint8(out.rgb),
            "segmentation": out.seg_logits.argmax(1).cpu().numpy(),
            "depth": self.model.decoders.expected_depth(out.depth_logits.float()).cpu().numpy(),
            "normals": out.normals.float().permute(0, 2, 3, 1).cpu().numpy(),
        }

    @torch.no_grad()
    def encode_context(self, context: Any) -> torch.Tensor:
        """Context frames -> latents (T, N, K) of the last `max_context` frames."""
        images = self.prepare_context(context)[-self.model.config.forecaster.max_context :]
        return self.model.encode_frames(images)

    # ---------------------------------------------------------------------------------------- sampling
    def stream(
        self,
        context: Any,
        *,
        horizon: int = 8,
        num_samples: int = 1,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        num_steps: int = 10,
        cache: bool = True,
    ) -> Iterator[WorldChunk]:
        """Yield each future frame's decoded outputs for all `num_samples` samples as soon as it is sampled."""
        horizon, samples = _check_count("horizon", horizon), _check_count("num_samples", num_samples)
        steps = _check_count("num_steps", num_steps)
        gen = self.make_generator(seed, generator)
        latents = self.encode_context(context)
        return self._stream(latents, horizon, samples, steps, cache, gen)

    def _stream(
        self, latents_TNK: torch.Tensor, horizon: int, samples: int, steps: int, cache: bool, gen: torch.Generator
    ) -> Iterator[WorldChunk]:
        start = time.perf_counter()
        context = latents_TNK[None].expand(samples, *latents_TNK.shape).contiguous()
        frames = forecast_stream(self.model.forecaster, context, horizon, generator=gen, num_steps=steps, cache=cache)
        for i, z in enumerate(frames):
            decoded = self.decode_latents(z)
            lat = z.float().cpu().numpy()
            yield WorldChunk(index=i, seconds=time.perf_counter() - start, latents=lat, **decoded)

    def collect(self, chunks: Iterable[Chunk], seconds: float, *args: Any, **kwargs: Any) -> WorldResult:
        items = [c for c in chunks if isinstance(c, WorldChunk)]
        if not items:
            raise UsageError("nothing was forecast", fix="ask for horizon >= 1")
        fields = {name: np.stack([getattr(c, name) for c in items], axis=1) for name in
                  ("segmentation", "depth", "normals", "latents")}  # fmt: skip
        return WorldResult(seconds=seconds, frames=np.stack([c.rgb for c in items], axis=1), **fields)
