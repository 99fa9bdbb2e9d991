"""Training tasks of VFMF, run by `genmotion train`: `vfmf-encoder` (MaskFeat pre-training of the patch
encoder, then feature statistics and the PCA latent), `vfmf-latent` (the channel-wise VAE and the feature
decoders on the frozen encoder) and `vfmf` (the space-time forecaster: flow matching or regression, in
the VAE or the PCA latent)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from genmotion.checkpoint import load_weights, read_checkpoint_config
from genmotion.config import from_dict
from genmotion.world.config import DecoderConfig, EncoderConfig, ForecasterConfig, LatentConfig
from genmotion.world.data import ClipSet, ClipSpec, frames_to_tensor, load_clips, sequence_batches
from genmotion.world.decoders import FeatureDecoders, depth_to_bins
from genmotion.world.encoder import MaskFeatHead, PatchEncoder
from genmotion.world.forecaster import SpaceTimeForecaster, forecast_loss
from genmotion.world.latent import ChannelStats, FeatureVAE, PCALatent, fit_pca

__all__ = [
    "EncoderData",
    "EncoderStage",
    "ForecastData",
    "ForecastTask",
    "LatentData",
    "LatentStage",
    "LatentTask",
    "PretrainEncoderTask",
    "decoder_losses",
    "encode_clips",
]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ encoder
@dataclass(frozen=True, kw_only=True)
class EncoderData:
    clips: ClipSpec = field(default_factory=ClipSpec)
    cache_dir: str = "runs/world/data"
    mask_ratio: float = 0.5
    pca_dim: int = 16
    stats_frames: int = 2000


class EncoderStage(nn.Module):
    """What `vfmf-encoder` trains and exports: the MaskFeat model, the feature statistics and the PCA latent."""

    def __init__(self, config: EncoderConfig, pca_dim: int = 16) -> None:
        super().__init__()
        self.pretrain = MaskFeatHead(config)
        self.feature_stats = ChannelStats(config.feature_dim)
        self.pca = PCALatent(config.feature_dim, pca_dim)


def _frame_batches(clips: ClipSet, batch_size: int, seed: int) -> Any:
    g = torch.Generator().manual_seed(seed)
    S, T = clips.num_scenes, clips.num_frames
    while True:
        idx = torch.randint(0, S * T, (batch_size,), generator=g)
        s, t = (idx // T).numpy(), (idx % T).numpy()
        flip = torch.rand((), generator=g) < 0.5
        images = frames_to_tensor(clips.rgb[s, t])
        yield {"images": images.flip(-1) if flip else images, "seed": int(torch.randint(0, 2**31, (), generator=g))}


def _all_frames(clips: ClipSet, count: int) -> torch.Tensor:
    flat = clips.rgb.reshape(-1, *clips.rgb.shape[2:])
    step = max(1, len(flat) // count)
    return frames_to_tensor(flat[::step][:count])


@torch.no_grad()
def _features(encoder: PatchEncoder, images: torch.Tensor, batch: int = 128) -> torch.Tensor:
    return torch.cat([encoder(images[i : i + batch]) for i in range(0, len(images), batch)])


class PretrainEncoderTask:
    model_config = EncoderConfig
    data_config = EncoderData

    def build_model(self, model_cfg: EncoderConfig) -> nn.Module:
        return EncoderStage(model_cfg)

    def dataloader(self, data_cfg: EncoderData, batch_size: int, seed: int, rank: int, world_size: int) -> Any:
        self._ratio = data_cfg.mask_ratio
        return _frame_batches(load_clips(data_cfg.clips, data_cfg.cache_dir), batch_size, seed)

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        head = model.pretrain
        assert isinstance(head, MaskFeatHead)
        images = batch["images"].to(next(model.parameters()).device)
        g = torch.Generator().manual_seed(batch["seed"])
        N = head.encoder.config.grid**2
        mask = (torch.rand(images.shape[0], N, generator=g) < getattr(self, "_ratio", 0.5)).to(images.device)
        return head.loss(images, mask), {}

    def checkpoint_config(self, model_cfg: EncoderConfig, data_cfg: EncoderData) -> dict[str, Any]:
        from genmotion.config import to_dict

        return {"kind": "vfmf-encoder", "encoder": to_dict(model_cfg), "pca_dim": data_cfg.pca_dim}

    def evaluate(self, model: nn.Module, model_cfg: EncoderConfig, data_cfg: EncoderData) -> dict[str, float]:
        """Fit the feature statistics and the PCA latent on training frames; score MaskFeat on held-out ones."""
        assert isinstance(model, EncoderStage)
        clips = load_clips(data_cfg.clips, data_cfg.cache_dir)
        feats = _features(model.pretrain.encoder, _all_frames(clips, data_cfg.stats_frames)).flatten(0, 2)
        model.feature_stats.fit(feats)
        kept = fit_pca(model.pca, model.feature_stats.normalise(feats))
        val = load_clips(ClipSpec(num_scenes=16, seed=data_cfg.clips.seed + 1), data_cfg.cache_dir)
        images = _all_frames(val, 256)
        g = torch.Generator().manual_seed(0)
        mask = torch.rand(images.shape[0], model_cfg.grid**2, generator=g) < data_cfg.mask_ratio
        with torch.no_grad():
            loss = float(model.pretrain.loss(images, mask))
        return {"maskfeat_val_loss": loss, "pca_variance_kept": kept}


# ----------------------------------------------------------------------------------- latent + decoders
@dataclass(frozen=True, kw_only=True)
class LatentData:
    encoder: str = "runs/world/encoder/model"
    clips: ClipSpec = field(default_factory=ClipSpec)
    cache_dir: str = "runs/world/data"


@dataclass(frozen=True, kw_only=True)
class LatentModel:
    vae: LatentConfig = field(default_factory=LatentConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)


class LatentStage(nn.Module):
    """What `vfmf-latent` trains: the feature VAE and the decoders (on ground-truth features)."""

    def __init__(self, config: LatentModel) -> None:
        super().__init__()
        self.vae = FeatureVAE(config.vae)
        self.decoders = FeatureDecoders(config.decoder)


def load_encoder_stage(directory: str | Path) -> EncoderStage:
    """The exported `vfmf-encoder` checkpoint, frozen."""
    cfg = read_checkpoint_config(directory)
    stage = EncoderStage(from_dict(EncoderConfig, cfg["encoder"]), int(cfg["pca_dim"]))
    load_weights(stage, directory)
    return stage.eval().requires_grad_(False)


def decoder_losses(decoders: FeatureDecoders, features: torch.Tensor, gt: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Segmentation CE, depth-bin CE, normal cosine (off the sky) and RGB L1 of decoded `features`."""
    out = decoders(features)
    ground = gt["classes"] > 0
    cos = (out.normals * gt["normals"]).sum(1)
    return {
        "seg": F.cross_entropy(out.seg_logits, gt["classes"]),
        "depth": F.cross_entropy(out.depth_logits, depth_to_bins(gt["depth"], decoders.config)),
        "normals": ((1 - cos) * ground).sum() / ground.sum().clamp(min=1),
        "rgb": (out.rgb - gt["rgb"]).abs().mean(),
    }


def _gt_batches(clips: ClipSet, encoder: EncoderStage, batch_size: int, seed: int) -> Any:
    g = torch.Generator().manual_seed(seed)
    S, T = clips.num_scenes, clips.num_frames
    while True:
        idx = torch.randint(0, S * T, (batch_size,), generator=g)
        s, t = (idx // T).numpy(), (idx % T).numpy()
        images = frames_to_tensor(clips.rgb[s, t])
        with torch.no_grad():
            feats = encoder.feature_stats.normalise(encoder.pretrain.encoder(images))
        yield {
            "features": feats,
            "rgb": images,
            "classes": torch.from_numpy(clips.classes[s, t]),
            "depth": torch.from_numpy(clips.depth[s, t]),
            "normals": torch.from_numpy(clips.normals[s, t]).permute(0, 3, 1, 2),
        }


class LatentTask:
    model_config = LatentModel
    data_config = LatentData

    def build_model(self, model_cfg: LatentModel) -> nn.Module:
        return LatentStage(model_cfg)

    def dataloader(self, data_cfg: LatentData, batch_size: int, seed: int, rank: int, world_size: int) -> Any:
        encoder = load_encoder_stage(data_cfg.encoder)
        return _gt_batches(load_clips(data_cfg.clips, data_cfg.cache_dir), encoder, batch_size, seed)

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(model, LatentStage)
        feats = batch["features"]
        mean, logvar = model.vae.moments(feats)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        recon = (model.vae.decode_raw(z) - feats).square().mean()
        kl = 0.5 * (mean.square() + logvar.exp() - 1 - logvar).sum(-1).mean()
        parts = decoder_losses(model.decoders, feats, batch)
        total = recon + model.vae.config.kl_weight * kl + sum(parts.values())
        return total, {"recon": float(recon), "kl": float(kl), **{k: float(v) for k, v in parts.items()}}

    def checkpoint_config(self, model_cfg: LatentModel, data_cfg: LatentData) -> dict[str, Any]:
        from genmotion.config import to_dict

        return {"kind": "vfmf-latent", **to_dict(model_cfg), "encoder": data_cfg.encoder}

    def evaluate(self, model: nn.Module, model_cfg: LatentModel, data_cfg: LatentData) -> dict[str, float]:
        """Fit the latent statistics on training features; VAE and PCA reconstruction error on held-out frames."""
        assert isinstance(model, LatentStage)
        encoder = load_encoder_stage(data_cfg.encoder)
        clips = load_clips(data_cfg.clips, data_cfg.cache_dir)
        norm = encoder.feature_stats.normalise
        with torch.no_grad():
            feats = norm(_features(encoder.pretrain.encoder, _all_frames(clips, 2000))).flatten(0, 2)
            model.vae.stats.fit(model.vae.moments(feats)[0])
            val = load_clips(ClipSpec(num_scenes=16, seed=data_cfg.clips.seed + 1), data_cfg.cache_dir)
            vf = norm(_features(encoder.pretrain.encoder, _all_frames(val, 256)))
            vae_mse = float((model.vae.decode(model.vae.encode(vf)) - vf).square().mean())
            pca_mse = float((encoder.pca.decode(encoder.pca.encode(vf)) - vf).square().mean())
        return {"vae_recon_mse": vae_mse, "pca_recon_mse": pca_mse}


# ----------------------------------------------------------------------------------------- forecaster
@dataclass(frozen=True, kw_only=True)
class ForecastData:
    encoder: str = "runs/world/encoder/model"
    latent_model: str = "runs/world/latent/model"
    latent: Literal["vae", "pca"] = "vae"
    clips: ClipSpec = field(default_factory=ClipSpec)
    cache_dir: str = "runs/world/data"
    min_length: int = 2
    max_length: int = 5
    max_skip: int = 3


def load_latent_stage(directory: str | Path) -> LatentStage:
    cfg = read_checkpoint_config(directory)
    stage = LatentStage(from_dict(LatentModel, {k: cfg[k] for k in ("vae", "decoder")}))
    load_weights(stage, directory)
    return stage.eval().requires_grad_(False)


@torch.no_grad()
def encode_clips(rgb_STHW3: Any, encoder: EncoderStage, to_latent: Any, batch: int = 256) -> torch.Tensor:
    """uint8 clips (S, T, H, W, 3) -> standardised latents (S, T, N, K)."""
    S, T = rgb_STHW3.shape[:2]
    flat = rgb_STHW3.reshape(S * T, *rgb_STHW3.shape[2:])
    out = []
    for i in range(0, S * T, batch):
        feats = encoder.feature_stats.normalise(encoder.pretrain.encoder(frames_to_tensor(flat[i : i + batch])))
        out.append(to_latent(feats).flatten(1, 2))
    z = torch.cat(out)
    return z.view(S, T, *z.shape[1:])


class ForecastTask:
    model_config = ForecasterConfig
    data_config = ForecastData

    def build_model(self, model_cfg: ForecasterConfig) -> nn.Module:
        return SpaceTimeForecaster(model_cfg)

    def dataloader(self, data_cfg: ForecastData, batch_size: int, seed: int, rank: int, world_size: int) -> Any:
        encoder = load_encoder_stage(data_cfg.encoder)
        to_latent = (
            encoder.pca.encode if data_cfg.latent == "pca" else load_latent_stage(data_cfg.latent_model).vae.encode
        )
        latents = encode_clips(load_clips(data_cfg.clips, data_cfg.cache_dir).rgb, encoder, to_latent)
        log.info("encoded %s training latents", tuple(latents.shape))
        g = torch.Generator().manual_seed(seed)
        batches = sequence_batches(
            latents, batch_size, g, min_length=data_cfg.min_length, max_length=data_cfg.max_length,
            max_skip=data_cfg.max_skip,
        )  # fmt: skip
        return (
            {"latents": z, "positions": p, "seed": int(torch.randint(0, 2**31, (), generator=g))} for z, p in batches
        )

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        g = torch.Generator().manual_seed(batch["seed"])
        loss = forecast_loss(model, batch["latents"], batch["positions"][0], g)
        return loss, {}

    def checkpoint_config(self, model_cfg: ForecasterConfig, data_cfg: ForecastData) -> dict[str, Any]:
        from genmotion.config import to_dict

        return {"kind": "vfmf-forecaster", "forecaster": to_dict(model_cfg), "latent": data_cfg.latent}

    def evaluate(self, model: nn.Module, model_cfg: ForecasterConfig, data_cfg: ForecastData) -> dict[str, float]:
        return {}
