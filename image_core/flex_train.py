"""Training tasks of FlexVAR for `genmotion train`: `flexvar-tokenizer` (the single-scale VQ) and `flexvar` (the
transformer on random scale schedules over a frozen tokenizer). They reuse the VAR tasks' data, codebook
updates, label dropout and evaluation; only the tokenizer, the targets and the schedules differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genmotion.checkpoint import load_weights, read_checkpoint_config
from genmotion.config import from_dict, to_dict
from genmotion.errors import InputError, UsageError
from genmotion.image_core.config import VARSamplingConfig
from genmotion.image_core.data import ImageDataConfig, class_names, image_batches, toy_class_accuracy
from genmotion.image_core.flex_checkpoint import (
    FLEXVAR_KIND,
    FlexVARImageModel,
    flexvar_checkpoint_config,
    load_flexvar_model,
)
from genmotion.image_core.flex_config import FlexVARConfig, FlexVARImageConfig
from genmotion.image_core.flex_sampler import stream_flex_scales
from genmotion.image_core.flex_tokenizer import FlexVQVAE, NormalizedQuantizer, check_flex_tokenizer_config
from genmotion.image_core.train import VQVAETask, VQVAETrainModel, _eval_batch, _to_uint8
from genmotion.image_core.var_model import drop_labels
from genmotion.nn.vqvae_config import VQVAEConfig

__all__ = [
    "FLEX_TOKENIZER_KIND",
    "FlexTokenizerTask",
    "FlexVARTask",
    "FlexVARTrainModel",
    "flex_inputs",
    "load_flex_tokenizer",
    "random_schedule",
]

FLEX_TOKENIZER_KIND = "flexvar-tokenizer"


def load_flex_tokenizer(directory: str | Path) -> FlexVQVAE:
    """The tokenizer of a flexvar-tokenizer or flexvar checkpoint directory, in eval mode."""
    path = Path(directory)
    raw = read_checkpoint_config(path)
    if raw["kind"] not in (FLEX_TOKENIZER_KIND, FLEXVAR_KIND):
        raise InputError(f"{path} holds a {raw['kind']!r} checkpoint", fix="pass a flexvar-tokenizer directory")
    if raw["kind"] == FLEXVAR_KIND:
        return load_flexvar_model(path).vae
    vae = FlexVQVAE(from_dict(VQVAEConfig, raw["vae"], prefix="vae"))
    load_weights(vae, path)
    return vae.eval()


class FlexTokenizerTask(VQVAETask):
    """Task `flexvar-tokenizer`: the var-tokenizer task on a `FlexVQVAE` (one scale, unit-vector codes)."""

    model_config = VQVAETrainModel
    data_config = ImageDataConfig

    def build_model(self, model_cfg: VQVAETrainModel) -> nn.Module:
        try:
            check_flex_tokenizer_config(model_cfg.vae)
        except ValueError as e:
            raise UsageError("model.vae is not a FlexVAR tokenizer", why=str(e)) from e
        self._cfg = model_cfg
        vae = FlexVQVAE(model_cfg.vae)
        if model_cfg.codebook == "ema":
            vae.quantize.embedding.weight.requires_grad_(False)
        return vae

    def checkpoint_config(self, model_cfg: VQVAETrainModel, data_cfg: ImageDataConfig) -> dict[str, Any]:
        return {"kind": FLEX_TOKENIZER_KIND, "vae": to_dict(model_cfg.vae)}


@dataclass(frozen=True, kw_only=True)
class FlexVARTrainModel:
    """`model:` of task flexvar: the transformer on a frozen flexvar-tokenizer."""

    flexvar: FlexVARConfig = field(default_factory=FlexVARConfig)
    tokenizer: str = ""  # a flexvar-tokenizer (or flexvar) checkpoint directory
    label_drop: float = 0.1  # probability of training a label as the null class (for guidance)
    default_schedule_rate: float = 0.05  # share of steps trained on `default_sizes` (the official 5 %)
    keep_rate: float = 0.5  # each size strictly between 1 and the full side joins a random schedule with this rate
    sampling: VARSamplingConfig = field(default_factory=VARSamplingConfig)  # shipped as the default


def random_schedule(
    config: FlexVARConfig, generator: torch.Generator, *, default_rate: float, keep_rate: float
) -> tuple[int, ...]:
    """One training schedule: `default_sizes` with probability `default_rate`, else 1, a random subset of the
    sizes in between (each kept with `keep_rate`, coarse to fine) and the full latent side; the middle sizes
    are dropped from the largest down while the schedule holds more than `max_tokens` tokens."""
    if float(torch.rand((), generator=generator)) < default_rate:
        return config.default_sizes
    middle = list(config.train_sizes[1:-1])
    keep = torch.rand(len(middle), generator=generator) < keep_rate
    sizes = [1, *(s for s, k in zip(middle, keep.tolist(), strict=True) if k), config.latent_size]
    while sum(s * s for s in sizes) > config.max_tokens and len(sizes) > 2:
        sizes.pop(-2)
    return tuple(sizes)


def flex_inputs(
    quantizer: NormalizedQuantizer, indices: Sequence[torch.Tensor], sizes: Sequence[int]
) -> list[torch.Tensor]:
    """Teacher-forcing inputs: for scale k+1 of the schedule, scale k's code map bicubic-upsampled to its side,
    each (B, Cv, s_{k+1}, s_{k+1}); `indices` are each scale's ground-truth ids (B, s_k^2)."""
    return [
        F.interpolate(quantizer.code_map(idx, s, s), size=(nxt, nxt), mode="bicubic")
        for idx, s, nxt in zip(indices[:-1], sizes[:-1], sizes[1:], strict=True)
    ]


class FlexVARTask:
    """Task `flexvar` (see `genmotion.train.task.Task`): teacher-forced cross-entropy over all scales of a random
    schedule per step, on a frozen tokenizer."""

    model_config = FlexVARTrainModel
    data_config = ImageDataConfig

    def __init__(self) -> None:
        self._generator = torch.Generator().manual_seed(0)
        self._cfg = FlexVARTrainModel()
        self._resolved: FlexVARImageConfig | None = None

    def build_model(self, model_cfg: FlexVARTrainModel) -> nn.Module:
        if not 0 <= model_cfg.label_drop < 1 or not 0 <= model_cfg.default_schedule_rate <= 1:
            raise UsageError("model.label_drop must be in [0, 1) and model.default_schedule_rate in [0, 1]")
        if not model_cfg.tokenizer:
            raise UsageError("task flexvar needs model.tokenizer", fix="train configs/image/flexvar_toy_tokenizer.yaml")
        vae = load_flex_tokenizer(model_cfg.tokenizer)
        try:
            config = FlexVARImageConfig(vae=vae.config, flexvar=model_cfg.flexvar)
        except ValueError as e:
            raise UsageError(f"model.flexvar does not fit the tokenizer in {model_cfg.tokenizer}", why=str(e)) from e
        model = FlexVARImageModel(config)
        model.vae = vae.requires_grad_(False).eval()
        model.var.init_weights()
        self._cfg, self._resolved = model_cfg, config
        return model

    def dataloader(self, data_cfg: ImageDataConfig, batch_size: int, seed: int, rank: int, world_size: int) -> Any:
        self._generator.manual_seed(seed + rank)
        return image_batches(data_cfg, batch_size, seed, rank, world_size)

    def _logits(
        self, model: FlexVARImageModel, images: torch.Tensor, labels: torch.Tensor, sizes: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            model.vae.eval()
            indices = model.vae.scale_indices(images, sizes)
            inputs = flex_inputs(model.vae.quantize, indices, sizes)
        return model.var(labels, inputs), torch.cat(indices, dim=1)  # (B, L, V), (B, L)

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(model, FlexVARImageModel)
        images, labels = batch
        cfg = self._cfg
        sizes = random_schedule(
            model.var.config, self._generator, default_rate=cfg.default_schedule_rate, keep_rate=cfg.keep_rate
        )
        labels = drop_labels(labels, model.var.num_classes, cfg.label_drop, self._generator)
        logits_BLV, target_BL = self._logits(model, images, labels, sizes)
        loss = F.cross_entropy(logits_BLV.flatten(0, 1), target_BL.flatten())
        accuracy = (logits_BLV.argmax(-1) == target_BL).float().mean()
        return loss, {"token_accuracy": accuracy.item(), "scales": float(len(sizes))}

    def checkpoint_config(self, model_cfg: FlexVARTrainModel, data_cfg: ImageDataConfig) -> dict[str, Any]:
        assert self._resolved is not None, "build_model runs before the export"
        names = class_names(data_cfg)
        if len(names) != self._resolved.flexvar.num_classes:
            names = ()
        return flexvar_checkpoint_config(self._resolved, names, model_cfg.sampling)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, model_cfg: FlexVARTrainModel, data_cfg: ImageDataConfig) -> dict[str, float]:
        """Teacher-forced token accuracy on held-out images over the default schedule; on the toy world also the
        share of samples (balanced over classes, shipped sampling settings) the detector reads as requested."""
        assert isinstance(model, FlexVARImageModel)
        images, labels = _eval_batch(data_cfg)
        device = next(model.parameters()).device
        sizes = model.var.config.default_sizes
        logits, target = self._logits(model, images.to(device), labels.to(device), sizes)
        out = {"eval_token_accuracy": float((logits.argmax(-1) == target).float().mean())}
        if data_cfg.source == "toyworld":
            wanted = torch.arange(data_cfg.eval_images, device=device) % model.var.num_classes
            s = model_cfg.sampling
            steps = list(
                stream_flex_scales(
                    model.var,
                    model.vae.quantize,
                    wanted,
                    sizes,
                    generator=torch.Generator(device=device).manual_seed(0),
                    guidance_scale=s.guidance_scale,
                    top_k=s.top_k,
                    top_p=s.top_p,
                    temperature=s.temperature,
                )
            )
            samples = model.vae.indices_to_image(steps[-1].indices, sizes[-1])
            out["eval_class_accuracy"] = toy_class_accuracy(_to_uint8(samples), wanted)
        return out
