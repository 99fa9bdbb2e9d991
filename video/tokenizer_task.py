"""`video-tokenizer`: trains VideoAR's causal multi-scale VQ tokenizer on clips (toy world or a video folder).

Loss: L1 + MSE reconstruction + the quantiser's VQ loss (no perceptual or adversarial terms: no pretrained
networks are reachable here). Evaluation: reconstruction PSNR through all scales on held-out clips.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from genmotion import metrics
from genmotion.checkpoint import load_weights, read_checkpoint_config
from genmotion.config import from_dict, to_dict
from genmotion.errors import UsageError
from genmotion.registry import resolve
from genmotion.video.config import VideoDataConfig, VideoTokenizerConfig
from genmotion.video.data import clip_source
from genmotion.video.tokenizer import VideoTokenizer

__all__ = ["VideoTokenizerModelConfig", "VideoTokenizerTask", "load_tokenizer", "psnr", "with_new_decoder"]


def load_tokenizer(name: str) -> VideoTokenizer:
    """A trained tokenizer from a `video-tokenizer` checkpoint, or the tokenizer part of a `videoar` one."""
    directory = resolve(name)
    cfg = read_checkpoint_config(directory)
    if cfg["kind"] == "videoar":
        tokenizer = VideoTokenizer(from_dict(VideoTokenizerConfig, cfg["model"]["tokenizer"], prefix="model.tokenizer"))
        return load_weights(tokenizer, directory, prefix="tokenizer.")  # type: ignore[return-value]
    if cfg["kind"] != "video-tokenizer":
        raise UsageError(f"{name} is a {cfg['kind']!r} checkpoint", fix="give a video-tokenizer or videoar checkpoint")
    tokenizer = VideoTokenizer(from_dict(VideoTokenizerConfig, cfg["tokenizer"], prefix="tokenizer"))
    return load_weights(tokenizer, directory)  # type: ignore[return-value]


KIND = "video-tokenizer"


@dataclass(frozen=True, kw_only=True)
class VideoTokenizerModelConfig:
    """The tokenizer plus loss settings. `restart_every`: steps between re-seeding codes no recent batch used
    with random residuals (keeps the codebook alive; single-process runs only); 0 disables.

    `init_from` starts from a `video-tokenizer` checkpoint (its config wins); `train: decoder` then trains
    only the decoder side, so every token stays as it was and a transformer trained on them still fits.
    `output_size` (with `train: decoder`): a new decoder, of `decoder_widths` (finest first), that makes
    frames of this size from the same tokens; the encoder then reads frames area-pooled back to the size it
    was trained on. `continuous_fraction`: the share of clips whose decoder input is the encoder's continuous
    latent (what a flow model such as Ca2-VDM decodes) instead of the quantised one.
    """

    tokenizer: VideoTokenizerConfig = field(default_factory=VideoTokenizerConfig)
    mse_weight: float = 1.0
    restart_every: int = 50
    init_from: str | None = None
    train: Literal["all", "decoder"] = "all"
    output_size: int | None = None
    decoder_widths: tuple[int, ...] | None = None
    continuous_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.output_size is not None and (self.train != "decoder" or self.init_from is None):
            raise ValueError(
                "model.output_size makes a new decoder for trained tokens: set model.train=decoder and model.init_from"
            )
        if not 0.0 <= self.continuous_fraction <= 1.0:
            raise ValueError(f"model.continuous_fraction must be in [0, 1], got {self.continuous_fraction}")


def with_new_decoder(
    tokenizer: VideoTokenizer, output_size: int, decoder_widths: Sequence[int] | None = None
) -> VideoTokenizer:
    """The same encoder, temporal mixing and codebook (so the same tokens) with a fresh decoder that makes
    `output_size` frames; the encoder reads frames area-pooled to the size it learnt on. `decoder_widths`
    (finest first) default to the old decoder's with the new levels prepended at its finest width."""
    c = tokenizer.config
    factor, rest = divmod(output_size, c.image_size)
    if rest or factor < 1 or factor & (factor - 1):
        raise UsageError(
            f"output_size {output_size} is not the tokenizer's {c.image_size} px times a power of two",
            fix=f"use {c.image_size} x 1, 2, 4, ...",
        )
    old = c.decoder_level_widths
    widths = tuple(decoder_widths) if decoder_widths else (old[0],) * (factor.bit_length() - 1) + tuple(old)
    new = VideoTokenizer(replace(c, image_size=output_size, input_pool=c.input_pool * factor, decoder_widths=widths))
    state = {k: v for k, v in tokenizer.state_dict().items() if not k.startswith("decoder.")}
    missing, unexpected = new.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("decoder.") for k in missing), (missing, unexpected)
    return new


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of frames in [-1, 1] (peak-to-peak 2)."""
    return metrics.psnr(a.float(), b.float(), data_range=2.0)


def check_resolution(data_cfg: VideoDataConfig, tokenizer_cfg: VideoTokenizerConfig) -> None:
    if data_cfg.image_size != tokenizer_cfg.image_size:
        raise UsageError(
            f"data.image_size {data_cfg.image_size} does not match the tokenizer's {tokenizer_cfg.image_size}",
            fix=f"set data.image_size={tokenizer_cfg.image_size}",
        )


class VideoTokenizerTask:
    """Task protocol implementation (see `genmotion.train.task.Task`)."""

    model_config = VideoTokenizerModelConfig
    data_config = VideoDataConfig

    def __init__(self) -> None:
        self._cfg = VideoTokenizerModelConfig()
        self._hits: torch.Tensor | None = None
        self._steps = 0
        self._tokenizer_config: VideoTokenizerConfig | None = None

    def build_model(self, model_cfg: VideoTokenizerModelConfig) -> nn.Module:

        if model_cfg.train == "decoder" and model_cfg.init_from is None:
            raise UsageError("model.train=decoder needs model.init_from", fix="point it at a trained tokenizer")
        model = (
            VideoTokenizer(model_cfg.tokenizer) if model_cfg.init_from is None else load_tokenizer(model_cfg.init_from)
        )
        if model_cfg.output_size is not None:
            model = with_new_decoder(model, model_cfg.output_size, model_cfg.decoder_widths)
        if model_cfg.train == "decoder":  # tokens depend on encoder + codebook only: freeze them
            for part in (model.encoder, model.encoder_mix, model.quantize):
                part.requires_grad_(False)
        self._cfg = model_cfg
        self._tokenizer_config = model.config
        return model

    @torch.no_grad()
    def _restart_dead_codes(self, model: VideoTokenizer, f_NChw: torch.Tensor) -> int:
        """Count code hits; every `restart_every` steps re-seed unused codes from this batch's residuals."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return 0  # ranks would re-seed differently and drift apart
        q = model.quantize
        f = f_NChw.detach().float()
        fhats = q.f_to_fhats(f)
        indices = q.f_to_indices(f)
        residuals = []
        for si, pn in enumerate(q.patch_nums):
            rest = f if si == 0 else f - fhats[si - 1]
            rest = F.adaptive_avg_pool2d(rest, pn)
            residuals.append(rest.permute(0, 2, 3, 1).reshape(-1, f.shape[1]))
        return self._restart(model, torch.cat([i.flatten() for i in indices]), torch.cat(residuals))

    @torch.no_grad()
    def _restart(
        self, model: VideoTokenizer, used: torch.Tensor, pool_NC: torch.Tensor, keep_zero: bool = False
    ) -> int:
        """Count the hits of codes `used`; every `restart_every` steps re-seed the codes nobody used with random
        rows of the residual pool (N, C). `keep_zero`: code 0 is the pinned "no change" code, never re-seeded."""
        q = model.quantize
        hits = torch.bincount(used, minlength=q.vocab_size)
        self._hits = hits if self._hits is None else self._hits + hits
        self._steps += 1
        if self._steps % self._cfg.restart_every:
            return 0
        dead = (self._hits == 0).nonzero().flatten()
        if keep_zero:
            dead = dead[dead != 0]
        self._hits = None
        if dead.numel() == 0:
            return 0
        pick = torch.randint(pool_NC.shape[0], (dead.numel(),), device=pool_NC.device)
        q.embedding.weight.data[dead] = pool_NC[pick].to(q.embedding.weight.dtype)
        return int(dead.numel())

    def dataloader(self, data_cfg: VideoDataConfig, batch_size: int, seed: int, rank: int, world_size: int) -> Any:
        return torch.utils.data.DataLoader(clip_source(data_cfg, batch_size, seed), batch_size=None)

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(model, VideoTokenizer)
        video = batch["video"]
        if video.shape[-1] != model.config.image_size:
            raise UsageError(
                f"training clips are {video.shape[-1]} px but the tokenizer reads {model.config.image_size} px",
                fix=f"set data.image_size={model.config.image_size}",
            )
        f = model.latents(video)
        B, T = f.shape[:2]
        codes = None
        if model.config.temporal_residual:
            codes = model.quantize_clip(f, straight_through=True)
            fhat, vq_loss = codes.fhat, codes.vq_loss
        else:
            fhat, vq_loss = model.quantize(f.flatten(0, 1))
            fhat = fhat.view(B, T, *fhat.shape[1:])
        if self._cfg.continuous_fraction > 0 and model.training:
            keep = torch.rand(B, device=f.device) >= self._cfg.continuous_fraction  # (B,) quantised clips
            fhat = torch.where(keep[:, None, None, None, None], fhat, f.detach())
        recon = model.decode_train(fhat)
        l1 = (recon.float() - video).abs().mean()
        mse = F.mse_loss(recon.float(), video)
        loss = l1 + self._cfg.mse_weight * mse + vq_loss
        logs = {
            "l1": float(l1.detach()),
            "vq": float(vq_loss.detach()),
            "psnr": 10 * math.log10(4.0 / max(float(mse.detach()), 1e-10)),
        }
        if self._cfg.restart_every and self._cfg.train == "all" and model.training:
            if codes is not None:
                used = torch.cat([i.flatten() for i in codes.indices])
                restarted = self._restart(model, used, torch.cat(codes.residuals).detach(), keep_zero=True)
            else:
                restarted = self._restart_dead_codes(model, f.flatten(0, 1))
            logs["restarted_codes"] = float(restarted)
        if codes is not None and T > 1:
            logs["unchanged_tokens"] = float(
                torch.cat([i[:, 1:].flatten() for i in codes.indices]).eq(0).float().mean()
            )
        return loss, logs

    def checkpoint_config(self, model_cfg: VideoTokenizerModelConfig, data_cfg: VideoDataConfig) -> dict[str, Any]:
        config = self._tokenizer_config or model_cfg.tokenizer
        check_resolution(data_cfg, config)
        return {"kind": KIND, "tokenizer": to_dict(config), "data": to_dict(data_cfg)}

    @torch.no_grad()
    def evaluate(
        self, model: nn.Module, model_cfg: VideoTokenizerModelConfig, data_cfg: VideoDataConfig
    ) -> dict[str, float]:
        """Reconstruction PSNR (dB) through all scales, and through the coarse scales only, on held-out clips."""
        assert isinstance(model, VideoTokenizer)
        batch = next(iter(clip_source(data_cfg, data_cfg.eval_clips, seed=987_654)))
        video = batch["video"]
        f = model.latents(video)
        B, T = f.shape[:2]
        if model.config.temporal_residual:
            codes = model.quantize_clip(f)
            out = {"eval_psnr": psnr(model.decode_fhat(codes.fhat), video)}
            if T > 1:
                out["eval_unchanged_tokens"] = float(
                    torch.cat([i[:, 1:].flatten() for i in codes.indices]).eq(0).float().mean()
                )
            indices = [i.flatten() for i in codes.indices]
            out["eval_codebook_usage"] = torch.unique(torch.cat(indices)).numel() / model.config.vocab_size
            return out
        fhats = model.quantize.f_to_fhats(f.flatten(0, 1).float())
        out = {"eval_psnr": psnr(model.decode_fhat(fhats[-1].view(B, T, *f.shape[2:])), video)}
        if len(fhats) > 1:
            out["eval_psnr_without_last_scale"] = psnr(model.decode_fhat(fhats[-2].view(B, T, *f.shape[2:])), video)
        indices = [i.flatten() for i in model.encode(video)]
        used = torch.unique(torch.cat(indices)).numel()
        out["eval_codebook_usage"] = used / model.config.vocab_size
        return out
