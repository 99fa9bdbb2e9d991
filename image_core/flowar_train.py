"""Training tasks of FlowAR for `genmotion train`: `flowar-tokenizer` (the KL autoencoder) and `flowar` (the
next-scale transformer and its flow head on the frozen autoencoder), on toy-world classes or a class-per-folder
tree (`genmotion.image_core.data`).

The autoencoder learns MSE + L1 reconstruction through a posterior sample plus a small KL term; the transformer
learns the flow head's velocity loss on every token of every scale, teacher-forced, with labels dropped to the
null class for guidance. Exports load with `load_flowar_model`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genmotion.checkpoint import load_weights, read_checkpoint_config
from genmotion.config import from_dict, to_dict
from genmotion.errors import InputError, UsageError
from genmotion.image_core.data import ImageDataConfig, class_names, image_batches, toy_class_accuracy
from genmotion.image_core.flowar_config import (
    FlowARConfig,
    FlowARImageConfig,
    FlowARSamplingConfig,
    KLAutoencoderConfig,
)
from genmotion.image_core.flowar_model import FlowARImageModel, flowar_checkpoint_config, load_flowar_model
from genmotion.image_core.flowar_sampler import sample_flowar_images
from genmotion.image_core.kl_autoencoder import KLAutoencoder
from genmotion.image_core.var_model import drop_labels
from genmotion.metrics import psnr
from genmotion.pipeline import to_uint8

__all__ = [
    "FLOWAR_TOKENIZER_KIND",
    "FlowARTask",
    "FlowARTrainModel",
    "KLAutoencoderTask",
    "KLAutoencoderTrainModel",
    "load_kl_autoencoder",
]

FLOWAR_TOKENIZER_KIND = "flowar-tokenizer"


@dataclass(frozen=True, kw_only=True)
class KLAutoencoderTrainModel:
    """`model:` of task flowar-tokenizer."""

    vae: KLAutoencoderConfig = field(default_factory=KLAutoencoderConfig)
    l1_weight: float = 1.0  # reconstruction = MSE + l1_weight * L1
    kl_weight: float = 1e-4  # weight of KL(q || N(0, I)), averaged over latent elements


@dataclass(frozen=True, kw_only=True)
class FlowARTrainModel:
    """`model:` of task flowar."""

    flowar: FlowARConfig = field(default_factory=FlowARConfig)
    tokenizer: str | None = None  # a flowar-tokenizer (or flowar) checkpoint directory
    label_drop: float = 0.1  # probability of training a label as the null class (for guidance)
    flow_batch_mul: int = 4  # flow times drawn per token and step (the head is cheap next to the transformer)
    stats_images: int = 512  # images whose latents set the per-channel normalisation
    sampling: FlowARSamplingConfig = field(default_factory=FlowARSamplingConfig)  # shipped as the default


def load_kl_autoencoder(source: str | Path) -> KLAutoencoder:
    """The autoencoder of a flowar-tokenizer or flowar checkpoint directory."""
    raw = read_checkpoint_config(source)
    if raw["kind"] == "flowar":
        return load_flowar_model(source).vae
    if raw["kind"] != FLOWAR_TOKENIZER_KIND:
        raise InputError(f"{source} holds a {raw['kind']!r} checkpoint", fix="pass a flowar-tokenizer checkpoint")
    vae = KLAutoencoder(from_dict(KLAutoencoderConfig, raw["vae"], prefix="vae"))
    load_weights(vae, source)
    return vae.eval()


def _eval_batch(data_cfg: ImageDataConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed held-out batch (seed 12345) of `eval_images` fresh images and labels."""
    fresh = dataclasses.replace(data_cfg, num_images=0)
    return next(iter(image_batches(fresh, data_cfg.eval_images, seed=12345, rank=0, world_size=1)))


def _to_uint8(images_B3HW: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(to_uint8(images_B3HW))


class KLAutoencoderTask:
    """Task `flowar-tokenizer` (see `genmotion.train.task.Task`)."""

    model_config = KLAutoencoderTrainModel
    data_config = ImageDataConfig

    def __init__(self) -> None:
        self._generator = torch.Generator().manual_seed(0)
        self._cfg = KLAutoencoderTrainModel()

    def build_model(self, model_cfg: KLAutoencoderTrainModel) -> nn.Module:
        if model_cfg.kl_weight < 0 or model_cfg.l1_weight < 0:
            raise UsageError("model.kl_weight and model.l1_weight must be >= 0", fix="e.g. kl_weight: 1.0e-4")
        self._cfg = model_cfg
        return KLAutoencoder(model_cfg.vae)

    def dataloader(self, data_cfg: ImageDataConfig, batch_size: int, seed: int, rank: int, world_size: int) -> Any:
        self._generator.manual_seed(seed)
        return image_batches(data_cfg, batch_size, seed, rank, world_size)

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(model, KLAutoencoder)
        images, _ = batch
        recon, posterior = model(images, self._generator)
        mse, kl = F.mse_loss(recon, images), posterior.kl()
        loss = mse + self._cfg.l1_weight * F.l1_loss(recon, images) + self._cfg.kl_weight * kl
        return loss, {"mse": mse.item(), "kl": kl.item()}

    def checkpoint_config(self, model_cfg: KLAutoencoderTrainModel, data_cfg: ImageDataConfig) -> dict[str, Any]:
        return {"kind": FLOWAR_TOKENIZER_KIND, "vae": to_dict(model_cfg.vae)}

    @torch.no_grad()
    def evaluate(
        self, model: nn.Module, model_cfg: KLAutoencoderTrainModel, data_cfg: ImageDataConfig
    ) -> dict[str, float]:
        """Reconstruction PSNR (posterior mean), latent spread and (toy world) the class read back."""
        assert isinstance(model, KLAutoencoder)
        images, labels = _eval_batch(data_cfg)
        images = images.to(next(model.parameters()).device)
        q = model.posterior(images)
        recon = model.decode(q.mean)
        out = {
            "eval_psnr_db": psnr(recon.float(), images.float(), data_range=2.0),
            "eval_latent_std": float(q.mean.std()),
            "eval_posterior_std": float((0.5 * q.logvar).exp().mean()),
        }
        if data_cfg.source == "toyworld":
            out["eval_recon_class_accuracy"] = toy_class_accuracy(_to_uint8(recon), labels)
        return out


class FlowARTask:
    """Task `flowar` (see `genmotion.train.task.Task`): transformer + flow head on a frozen autoencoder."""

    model_config = FlowARTrainModel
    data_config = ImageDataConfig

    def __init__(self) -> None:
        self._generator = torch.Generator().manual_seed(0)
        self._resolved: FlowARImageConfig | None = None
        self._cfg = FlowARTrainModel()
        self._data = ImageDataConfig()

    def build_model(self, model_cfg: FlowARTrainModel) -> nn.Module:
        if not 0 <= model_cfg.label_drop < 1 or model_cfg.flow_batch_mul < 1 or model_cfg.stats_images < 2:
            raise UsageError(
                "need model.label_drop in [0, 1), model.flow_batch_mul >= 1 and model.stats_images >= 2",
                fix="e.g. label_drop: 0.1, flow_batch_mul: 4, stats_images: 512",
            )
        if not model_cfg.tokenizer:
            raise UsageError("task flowar needs model.tokenizer", fix="set it to a trained flowar-tokenizer directory")
        vae = load_kl_autoencoder(model_cfg.tokenizer)
        try:
            config = FlowARImageConfig(vae=vae.config, flowar=model_cfg.flowar)
        except ValueError as e:
            raise UsageError(f"model.flowar does not fit the autoencoder in {model_cfg.tokenizer}", why=str(e)) from e
        model = FlowARImageModel(config)
        model.vae = vae.requires_grad_(False).eval()
        model.var.init_weights(init_head=1.0)
        self._cfg, self._resolved = model_cfg, config
        return model

    def dataloader(self, data_cfg: ImageDataConfig, batch_size: int, seed: int, rank: int, world_size: int) -> Any:
        self._generator.manual_seed(seed)
        self._data = data_cfg
        return image_batches(data_cfg, batch_size, seed, rank, world_size)

    def _set_statistics(self, model: FlowARImageModel, images: torch.Tensor) -> None:
        with torch.no_grad():
            model.set_latent_statistics(model.vae.encode(images))

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(model, FlowARImageModel)
        images, labels = batch
        if not bool(model.statistics_set):  # first step (and never after a resume: the buffers are saved)
            stats = dataclasses.replace(self._data, num_images=0)
            pool = next(iter(image_batches(stats, self._cfg.stats_images, seed=777, rank=0, world_size=1)))[0]
            self._set_statistics(model, pool.to(images.device))
        model.vae.eval()
        with torch.no_grad():
            latent = model.normalise(model.vae.encode(images))
        labels = drop_labels(labels, model.var.num_classes, self._cfg.label_drop, self._generator)
        loss, per_scale = model.velocity_loss(labels, latent, self._generator, self._cfg.flow_batch_mul)
        logs = {f"loss_scale{i}": v for i, v in enumerate(per_scale)}
        return loss, logs

    def checkpoint_config(self, model_cfg: FlowARTrainModel, data_cfg: ImageDataConfig) -> dict[str, Any]:
        assert self._resolved is not None, "build_model runs before the export"
        names = class_names(data_cfg)
        if len(names) != self._resolved.flowar.num_classes:
            names = ()
        return flowar_checkpoint_config(self._resolved, names, model_cfg.sampling)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, model_cfg: FlowARTrainModel, data_cfg: ImageDataConfig) -> dict[str, float]:
        """Held-out velocity loss; on the toy world also the share of samples (balanced over classes, the shipped
        sampling settings) the detector reads as the requested class."""
        assert isinstance(model, FlowARImageModel)
        images, labels = _eval_batch(data_cfg)
        device = next(model.parameters()).device
        latent = model.normalise(model.vae.encode(images.to(device)))
        g = torch.Generator(device=device).manual_seed(0)
        loss, _ = model.velocity_loss(labels.to(device), latent, g, 1)
        out = {"eval_velocity_loss": float(loss)}
        if data_cfg.source == "toyworld":
            wanted = torch.arange(data_cfg.eval_images, device=device) % model.var.num_classes
            samples = sample_flowar_images(model, wanted, generator=g, settings=model_cfg.sampling)
            out["eval_class_accuracy"] = toy_class_accuracy(_to_uint8(samples), wanted)
        return out
