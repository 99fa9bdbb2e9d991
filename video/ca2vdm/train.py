"""`ca2vdm`: trains the causal flow video model by flow matching on a frozen autoencoder (a trained video
tokenizer with its quantiser bypassed), on the toy world or the user's captioned videos.

One forward trains every chunk of a clip exactly as inference runs it (Ca2-VDM): the sequence is the clip's
clean tokens at `CLEAN_TIME` followed by the same frames noised, each chunk at its own random flow time.
Clean tokens attend frame-causally within the context window (what `SharedClean` caches); a noisy chunk
attends to the clean frames of its window before it and to itself frame-causally. So the K/V a clean
chunk writes at inference are exactly what training showed, for every denoising step. With probability
`sink_probability` a step also keeps the first frame as an attention sink (the rule `RollingWindow`
and Forcing-KV use). Self context (`self_context_rate`, not in Ca2-VDM): a share of the clips read as context
the model's own draw of each chunk (`own_chunks`) instead of the clean frames, the velocity target unchanged.
Axes: B batch, T frames, N tokens per frame, L = T * N, D token channels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from genmotion.checkpoint import load_weights
from genmotion.config import to_dict
from genmotion.errors import UsageError
from genmotion.nn.masks import chunk_window_mask
from genmotion.registry import resolve
from genmotion.sampling.flow import CLEAN_TIME, flow_path, integrate, timesteps, velocity_target
from genmotion.video.ca2vdm.config import Ca2VDMConfig, CausalFlowConfig
from genmotion.video.ca2vdm.model import Ca2VDM
from genmotion.video.ca2vdm.pipeline import KIND, read_ca2vdm_config
from genmotion.video.ca2vdm.sampler import GuidedFlow
from genmotion.video.config import VideoDataConfig
from genmotion.video.data import clip_source
from genmotion.video.text import statistics_captions
from genmotion.video.tokenizer_task import load_tokenizer

__all__ = ["Ca2VDMModelConfig", "Ca2VDMTask", "ca2vdm_loss", "own_chunks", "training_mask"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Ca2VDMModelConfig:
    """`tokenizer_checkpoint` (a trained `video-tokenizer`/`videoar` checkpoint: its encoder and decoder are the
    autoencoder) or `init_from` (a `ca2vdm` checkpoint to fine-tune); the flow transformer; regularisers.
    `flow_init` (with `tokenizer_checkpoint`): start the flow transformer from another `ca2vdm` checkpoint's
    (same architecture) on a new autoencoder; the latent statistics are measured on the new one."""

    tokenizer_checkpoint: str | None = None
    init_from: str | None = None
    flow: CausalFlowConfig = field(default_factory=CausalFlowConfig)
    condition_dropout: float = 0.1
    sink_probability: float = 0.5
    context_noise: float = 0.05  # clean context tokens get N(0, s^2) noise, s ~ U(0, context_noise)
    context_frames: int | None = None  # with init_from: fine-tune to this clean window instead of the checkpoint's
    flow_init: str | None = None
    self_context_rate: float = 0.0  # share of clips whose context is the model's own draw of each chunk
    self_context_steps: int = 4  # Euler steps of that draw
    self_context_guidance: float = 3.0  # its guidance scale (the pipeline's default)
    self_context_reencode: bool = True  # the draw decoded and encoded again, as the pipeline commits chunks

    def __post_init__(self) -> None:
        if not 0.0 <= self.self_context_rate <= 1.0 or self.self_context_steps < 1:
            raise ValueError(
                f"model.self_context_rate must lie in [0, 1] and model.self_context_steps be >= 1, got "
                f"{self.self_context_rate} and {self.self_context_steps}"
            )
        if (self.tokenizer_checkpoint is None) == (self.init_from is None):
            raise ValueError("set exactly one of model.tokenizer_checkpoint and model.init_from")
        if self.context_frames is not None and (self.init_from is None or self.context_frames < 1):
            raise ValueError("model.context_frames (>= 1) only re-sizes the window of an init_from checkpoint")


def _init_flow(model: Ca2VDM, name: str) -> None:
    """Copy the flow transformer's weights (everything but the autoencoder and the latent statistics) of the
    `ca2vdm` checkpoint `name` into `model`."""
    directory = resolve(name)
    source = read_ca2vdm_config(directory)
    if source.flow != model.config.flow:
        raise UsageError(
            f"model.flow_init {name} has another flow architecture", fix="leave model.flow at that checkpoint's"
        )
    load_weights(model, directory, skip=("tokenizer.", "latent_mean", "latent_std"))


def training_mask(frames: int, tokens_per_frame: int, frames_per_chunk: int, *, sink: int, window: int) -> torch.Tensor:
    """(2L, 2L) bool over [clean tokens, noisy tokens] of a clip (L = frames * tokens_per_frame)."""
    frame = torch.arange(frames * tokens_per_frame) // tokens_per_frame  # (L,)
    start = frame // frames_per_chunk * frames_per_chunk  # first frame of each token's chunk
    clean = chunk_window_mask(frame, start, frame, sink=sink, window=window)  # (L, L)
    q_start, k_frame = start[:, None], frame[None, :]
    noisy_to_clean = (k_frame < q_start) & ((k_frame < sink) | (k_frame >= q_start - window))
    noisy_to_noisy = (start[None, :] == q_start) & (k_frame <= frame[:, None])
    top = torch.cat([clean, torch.zeros_like(clean)], dim=1)
    return torch.cat([top, torch.cat([noisy_to_clean, noisy_to_noisy], dim=1)], dim=0)


def ca2vdm_loss(
    model: Ca2VDM,
    video_BT3HW: torch.Tensor,
    text_BE: torch.Tensor,
    settings: Ca2VDMModelConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Flow-matching MSE of the velocity over every chunk of the clips, one forward."""
    cfg = model.config.flow
    with torch.no_grad():
        x1 = model.encode_tokens(video_BT3HW)  # (B, T, N, D)
    B, T, N, D = x1.shape
    chunks = -(-T // cfg.frames_per_chunk)
    t_chunk = torch.rand(B, chunks, generator=generator)
    t_frame = t_chunk.repeat_interleave(cfg.frames_per_chunk, dim=1)[:, :T].to(x1.device)  # (B, T)
    x0 = torch.randn(x1.shape, generator=generator).to(x1.device)
    xt = flow_path(x0, x1, t_frame[:, :, None, None])
    sigma = torch.rand(B, 1, 1, 1, generator=generator).to(x1.device) * settings.context_noise
    noise = sigma * torch.randn(x1.shape, generator=generator).to(x1.device)
    context = x1 + noise
    positions = (torch.arange(T * N, device=x1.device) // N).repeat(2)
    sink = int(torch.rand((), generator=generator) < settings.sink_probability)
    mask = training_mask(T, N, cfg.frames_per_chunk, sink=sink, window=cfg.context_frames).to(x1.device)
    keep = torch.rand(B, generator=generator) >= settings.condition_dropout
    if settings.self_context_rate > 0:
        own = (torch.rand(B, generator=generator) < settings.self_context_rate).to(x1.device)
        if bool(own.any()):
            drawn = own_chunks(model, x1[own], text_BE[own.to(text_BE.device)], mask, positions, settings, generator)
            context[own] = drawn + noise[own]
    x = torch.cat([context.reshape(B, T * N, D), xt.reshape(B, T * N, D)], dim=1)  # (B, 2L, D)
    t_BL = torch.cat([torch.full((B, T * N), CLEAN_TIME, device=x1.device), t_frame.repeat_interleave(N, dim=1)], 1)
    cond = model.text_condition(text_BE.to(x1.device), keep)
    v = model(x, t_BL, positions, cond, mask=mask)[:, T * N :]
    loss = (v - velocity_target(x0, x1).reshape(B, T * N, D)).square().mean()
    return loss, {}


@torch.no_grad()
def own_chunks(
    model: Ca2VDM,
    x1_BTND: torch.Tensor,
    text_BE: torch.Tensor,
    mask: torch.Tensor,
    positions: torch.Tensor,
    settings: Ca2VDMModelConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Self context (not in Ca2-VDM; parallel scheduled sampling): the model's own draw (B, T, N, D) of every chunk
    of clean clips x1, each chunk from fresh noise given the clean frames before it (the training mask), by
    `self_context_steps` Euler steps under guidance `self_context_guidance`, decoded and encoded again when
    `self_context_reencode` (what the pipeline commits). A training step whose context is this learns to continue
    from the chunks the model itself makes, as the cached inference does, and to pull them back to the data."""
    B, T, N, D = x1_BTND.shape
    L = T * N
    flow = GuidedFlow(model, model.text_condition(text_BE.to(x1_BTND.device)), settings.self_context_guidance)
    context = x1_BTND.reshape(B, L, D)
    clean = torch.full((B, L), CLEAN_TIME, device=context.device)

    def velocity(x_BLD: torch.Tensor, t: float) -> torch.Tensor:
        seq, t_BL = torch.cat([context, x_BLD], 1), torch.cat([clean, torch.full_like(clean, t)], 1)  # (B, 2L, ...)
        return flow(seq, t_BL, positions, mask=mask)[:, L:]

    noise = torch.randn(context.shape, generator=generator).to(context.device)
    drawn = integrate(velocity, noise, timesteps(settings.self_context_steps)).view(B, T, N, D)
    return model.encode_tokens(model.decode_tokens(drawn)) if settings.self_context_reencode else drawn


class Ca2VDMTask:
    """Task protocol implementation (see `genmotion.train.task.Task`)."""

    model_config = Ca2VDMModelConfig
    data_config = VideoDataConfig

    def __init__(self) -> None:
        self._settings: Ca2VDMModelConfig | None = None
        self._config: Ca2VDMConfig | None = None
        self._fresh: Ca2VDM | None = None
        self._generator = torch.Generator().manual_seed(0)

    def build_model(self, model_cfg: Ca2VDMModelConfig) -> nn.Module:
        self._settings = model_cfg
        if model_cfg.init_from is not None:
            directory = resolve(model_cfg.init_from)
            config = read_ca2vdm_config(directory)
            if model_cfg.context_frames is not None:  # positions are relative frame indices: no weight depends on it
                config = replace(config, flow=replace(config.flow, context_frames=model_cfg.context_frames))
            model = Ca2VDM(config)
            load_weights(model, directory)
            self._fresh = None
        else:
            assert model_cfg.tokenizer_checkpoint is not None
            tokenizer = load_tokenizer(model_cfg.tokenizer_checkpoint)
            model = Ca2VDM(Ca2VDMConfig(tokenizer=tokenizer.config, flow=model_cfg.flow))
            model.tokenizer.load_state_dict(tokenizer.state_dict())
            if model_cfg.flow_init is not None:
                _init_flow(model, model_cfg.flow_init)
            self._fresh = model
        model.tokenizer.requires_grad_(False)  # frozen: the optimiser only sees the flow transformer
        self._config = model.config
        return model

    def dataloader(self, data_cfg: VideoDataConfig, batch_size: int, seed: int, rank: int, world_size: int) -> Any:
        from genmotion.text import PromptEncoder

        if self._config is not None and data_cfg.image_size != self._config.tokenizer.image_size:
            raise UsageError(
                f"data.image_size {data_cfg.image_size} does not match the autoencoder's "
                f"{self._config.tokenizer.image_size}",
                fix=f"set data.image_size={self._config.tokenizer.image_size}",
            )
        self._generator = torch.Generator().manual_seed(seed + 7919)
        encoder = PromptEncoder()
        source = clip_source(data_cfg, batch_size, seed, encoder=encoder)
        if self._fresh is not None:  # statistics from fixed-seed data: the same on every rank
            self._fresh.set_text_statistics(encoder.encode(statistics_captions(data_cfg)).pooled)
            stats_source = clip_source(data_cfg, 16, 4242, encoder=None)
            batches = [b["video"] for b, _ in zip(stats_source, range(4), strict=False)]
            with torch.no_grad():
                self._fresh.set_latent_statistics(self._fresh.tokenizer.latents(torch.cat(batches)))
        return torch.utils.data.DataLoader(source, batch_size=None)

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(model, Ca2VDM) and self._settings is not None
        return ca2vdm_loss(model, batch["video"], batch["text"], self._settings, self._generator)

    def checkpoint_config(self, model_cfg: Ca2VDMModelConfig, data_cfg: VideoDataConfig) -> dict[str, Any]:
        if self._config is None:
            raise RuntimeError("checkpoint_config before build_model")
        return {"kind": KIND, "model": to_dict(self._config), "data": to_dict(data_cfg)}

    def evaluate(self, model: nn.Module, model_cfg: Ca2VDMModelConfig, data_cfg: VideoDataConfig) -> dict[str, float]:
        """Toy-world prompt adherence on held-out paraphrases (16 frames, guidance 3), for the model card."""
        from genmotion.video.ca2vdm.pipeline import Ca2VDMPipeline
        from genmotion.video.evaluate import adherence_summary, eval_prompts

        assert isinstance(model, Ca2VDM)
        if data_cfg.source != "toyworld":
            return {}
        prompts = eval_prompts(min(data_cfg.eval_clips, 24), seed=2024)
        return adherence_summary(Ca2VDMPipeline(model), prompts, seeds=(0,), num_frames=16)
