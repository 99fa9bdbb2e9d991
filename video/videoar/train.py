"""`videoar`: trains the VideoAR transformer on a frozen tokenizer (toy world or the user's captioned videos).

The exported checkpoint is one directory holding both tokenizer and transformer weights
(`kind: videoar`), loadable with `genmotion.load(dir)`. `init_from` fine-tunes an existing `videoar`
checkpoint (e.g. the embedded `videoar-toy`) instead of starting from scratch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from genmotion.checkpoint import load_weights, read_checkpoint_config
from genmotion.config import from_dict, to_dict
from genmotion.errors import UsageError
from genmotion.registry import resolve
from genmotion.video.config import VideoDataConfig, VideoTokenizerConfig
from genmotion.video.data import clip_source
from genmotion.video.text import statistics_captions
from genmotion.video.tokenizer_task import load_tokenizer
from genmotion.video.videoar.config import VideoARConfig, VideoARTransformerConfig
from genmotion.video.videoar.layout_prior import LayoutPriorConfig, layout_loss
from genmotion.video.videoar.loss import TrainingSettings, videoar_loss
from genmotion.video.videoar.model import VideoAR, VideoARTransformer

__all__ = ["KIND", "VideoARModelConfig", "VideoARTask", "read_videoar_config"]

log = logging.getLogger(__name__)

KIND = "videoar"


@dataclass(frozen=True, kw_only=True)
class VideoARModelConfig:
    """Where the tokenizer comes from, the transformer, and the training regularisers.

    Exactly one of: `tokenizer_checkpoint` (a `video-tokenizer` or `videoar` checkpoint, directory or
    registry name), `init_from` (a `videoar` checkpoint to fine-tune: tokenizer and transformer weights and
    configs come from it; `transformer.depth` may be raised, the new blocks appended as the identity), or
    `tokenizer` (a fresh, untrained tokenizer: only for smoke tests).
    `transformer_init` (with `tokenizer_checkpoint`): start the transformer from another `videoar` checkpoint's
    transformer (same architecture, e.g. a new tokenizer of the same latent and vocabulary sizes).
    `train: layout_prior` (with `init_from`): train only a layout prior (`layout_prior`, its architecture) for
    the checkpoint, on the coarsest codes of its frame 0s; every other weight is frozen and exported unchanged.
    `train: keyframe` (with `init_from` a checkpoint that has a keyframe transformer, and one-frame clips):
    fine-tune only that keyframe transformer, e.g. on the clips' real first frames (`data.max_start_frame=0`).
    """

    tokenizer_checkpoint: str | None = None
    init_from: str | None = None
    tokenizer: VideoTokenizerConfig | None = None
    transformer: VideoARTransformerConfig = field(default_factory=VideoARTransformerConfig)
    condition_dropout: float = 0.1
    error_correction_rate: float = 0.3
    frame_mask_rate: float = 0.1
    change_weight: float = 1.0  # > 1: tokens whose code changes from the previous frame weigh more
    first_frame_weight: float = 1.0  # frame 0's tokens (drawn from text alone) weigh this much in the loss
    self_context_rate: float = 0.0  # share of clips whose context frames are the model's own draws (not in VideoAR)
    self_context_copy: bool = False  # in those clips, tokens the toy world keeps target the model's own previous code
    self_context_rounds: int = 1  # draws of the self context, each given the last: r rounds carry r frames of errors
    transformer_init: str | None = None  # a `videoar` checkpoint whose transformer weights start this run
    train: Literal["transformer", "layout_prior", "keyframe"] = "transformer"
    layout_prior: LayoutPriorConfig | None = None

    def __post_init__(self) -> None:
        given = [n for n in ("tokenizer_checkpoint", "init_from", "tokenizer") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "set exactly one of model.tokenizer_checkpoint, model.init_from, model.tokenizer "
                f"(got {given or 'none'})"
            )
        if self.train != "transformer" and self.init_from is None:
            raise ValueError(f"model.train={self.train} trains a part of a checkpoint: set model.init_from")
        if self.layout_prior is not None and self.train != "layout_prior":
            raise ValueError("model.layout_prior is the architecture of model.train=layout_prior; set both")

    @property
    def settings(self) -> TrainingSettings:
        return TrainingSettings(
            condition_dropout=self.condition_dropout,
            error_correction_rate=self.error_correction_rate,
            frame_mask_rate=self.frame_mask_rate,
            change_weight=self.change_weight,
            first_frame_weight=self.first_frame_weight,
            self_context_rate=self.self_context_rate,
            self_context_copy=self.self_context_copy,
            self_context_rounds=self.self_context_rounds,
        )


def read_videoar_config(directory: Any) -> VideoARConfig:
    """The `VideoARConfig` of a `videoar` checkpoint directory."""
    cfg = read_checkpoint_config(directory)
    if cfg["kind"] != KIND:
        raise UsageError(
            f"{directory} is a {cfg['kind']!r} checkpoint, not {KIND!r}", fix="point at a videoar checkpoint"
        )
    return from_dict(VideoARConfig, cfg["model"], prefix="model")


def deepen_as_identity(transformer: VideoARTransformer, loaded: int) -> None:
    """Blocks `loaded`.. of a transformer whose first `loaded` blocks hold trained weights become copies of block 0
    with their attention and MLP output projections zeroed: each adds nothing to the residual stream, so the deeper
    network computes what the trained one did, and fine-tuning starts from there."""
    blocks = transformer.blocks
    with torch.no_grad():
        for block in blocks[loaded:]:
            block.load_state_dict(blocks[0].state_dict())
            for out in (block.attn.proj, block.mlp.fc2):
                out.weight.zero_()
                out.bias.zero_()


class VideoARTask:
    """Task protocol implementation (see `genmotion.train.task.Task`)."""

    model_config = VideoARModelConfig
    data_config = VideoDataConfig

    def __init__(self) -> None:
        self._settings = TrainingSettings()
        self._config: VideoARConfig | None = None
        self._needs_text_statistics: VideoAR | None = None
        self._generator = torch.Generator().manual_seed(0)
        self._train: str = "transformer"
        self._sampling: dict[str, Any] | None = None  # the fine-tuned checkpoint's recommendation, kept

    def build_model(self, model_cfg: VideoARModelConfig) -> nn.Module:
        self._settings = model_cfg.settings
        self._train = model_cfg.train
        if self._train == "layout_prior":
            return self._layout_model(model_cfg)
        if self._train == "keyframe":
            return self._keyframe_model(model_cfg)
        if model_cfg.init_from is not None:
            directory = resolve(model_cfg.init_from)
            config = read_videoar_config(directory)
            self._sampling = read_checkpoint_config(directory).get("sampling")
            given, depth = model_cfg.transformer, config.transformer.depth
            if given != VideoARTransformerConfig():  # the sink distance (no weight depends on it) or more depth
                same = replace(given, max_sink_distance=config.transformer.max_sink_distance, depth=depth)
                if same != config.transformer or given.depth < depth:
                    raise UsageError(
                        "model.transformer differs from the checkpoint given in model.init_from",
                        why="a fine-tune keeps the checkpoint's architecture; only max_sink_distance may change, and "
                        "depth may grow (the new blocks start as the identity)",
                        fix="leave model.transformer out, or change only its max_sink_distance or raise its depth",
                    )
                config = replace(config, transformer=given)
            model = VideoAR(config)
            grown = tuple(f"transformer.blocks.{i}." for i in range(depth, config.transformer.depth))
            load_weights(model, directory, skip=grown)  # every other weight must be there
            deepen_as_identity(model.transformer, depth)
        elif model_cfg.tokenizer_checkpoint is not None:
            tokenizer = load_tokenizer(model_cfg.tokenizer_checkpoint)
            model = VideoAR(VideoARConfig(tokenizer=tokenizer.config, transformer=model_cfg.transformer))
            model.tokenizer.load_state_dict(tokenizer.state_dict())
            if model_cfg.transformer_init is not None:
                self._init_transformer(model, model_cfg.transformer_init)
        else:
            assert model_cfg.tokenizer is not None
            model = VideoAR(VideoARConfig(tokenizer=model_cfg.tokenizer, transformer=model_cfg.transformer))
        model.tokenizer.requires_grad_(False)  # frozen: the optimiser only sees the transformer
        self._config = model.config
        started = model_cfg.init_from is not None or model_cfg.transformer_init is not None
        self._needs_text_statistics = None if started else model
        return model

    def _part_of(self, model_cfg: VideoARModelConfig) -> tuple[Path, VideoARConfig]:
        """The `init_from` checkpoint a part of which trains: its directory and config (its sampling block kept
        for the export)."""
        assert model_cfg.init_from is not None
        directory = resolve(model_cfg.init_from)
        self._sampling = read_checkpoint_config(directory).get("sampling")
        return directory, read_videoar_config(directory)

    def _layout_model(self, model_cfg: VideoARModelConfig) -> VideoAR:
        """The `init_from` checkpoint with a layout prior (its own, or a new one of `model_cfg.layout_prior`);
        only the prior trains."""
        directory, config = self._part_of(model_cfg)
        fresh = config.layout_prior is None or (
            model_cfg.layout_prior is not None and model_cfg.layout_prior != config.layout_prior
        )
        if fresh:
            config = replace(config, layout_prior=model_cfg.layout_prior or LayoutPriorConfig())
        model = VideoAR(config)
        load_weights(model, directory, skip=("layout_prior.",) if fresh else ())
        model.requires_grad_(False)
        assert model.layout_prior is not None
        model.layout_prior.requires_grad_(True)
        self._config = model.config
        self._needs_text_statistics = model if fresh else None
        return model

    def _keyframe_model(self, model_cfg: VideoARModelConfig) -> VideoAR:
        """The `init_from` checkpoint, of which only the keyframe transformer trains."""
        directory, config = self._part_of(model_cfg)
        if config.keyframe is None:
            raise UsageError(
                f"model.train=keyframe: {model_cfg.init_from} has no keyframe transformer",
                fix="compose one first (genmotion convert keyframe) or train the transformer (model.train=transformer)",
            )
        model = VideoAR(config)
        load_weights(model, directory)
        model.requires_grad_(False)
        assert model.keyframe is not None
        model.keyframe.requires_grad_(True)
        self._config = config
        return model

    @staticmethod
    def _init_transformer(model: VideoAR, name: str) -> None:
        directory = resolve(name)
        source = read_videoar_config(directory)
        if source.transformer != model.config.transformer:
            raise UsageError(
                f"model.transformer_init {name} has another transformer architecture",
                fix="leave model.transformer at the architecture of that checkpoint",
            )
        load_weights(model.transformer, directory, prefix="transformer.")

    def dataloader(self, data_cfg: VideoDataConfig, batch_size: int, seed: int, rank: int, world_size: int) -> Any:
        from genmotion.text import PromptEncoder

        if self._config is not None:
            self._check_data(data_cfg, self._config)
        if self._train == "keyframe" and data_cfg.num_frames != 1:
            raise UsageError(
                f"model.train=keyframe trains on one-frame clips, got data.num_frames={data_cfg.num_frames}",
                why="the keyframe transformer draws frame 0 from the text alone",
                fix="set data.num_frames=1",
            )
        self._generator = torch.Generator().manual_seed(seed + 7919)
        encoder = PromptEncoder()
        if self._needs_text_statistics is not None:  # the same on every rank: fixed seed or the sidecar
            texts = encoder.encode(statistics_captions(data_cfg)).pooled
            needs = self._needs_text_statistics
            target = needs.layout_prior if self._train == "layout_prior" else needs.transformer
            assert target is not None
            target.set_text_statistics(texts)
        source = clip_source(data_cfg, batch_size, seed, encoder=encoder)
        return torch.utils.data.DataLoader(source, batch_size=None)

    @staticmethod
    def _check_data(data_cfg: VideoDataConfig, config: VideoARConfig) -> None:
        if data_cfg.image_size != config.tokenizer.image_size:
            raise UsageError(
                f"data.image_size {data_cfg.image_size} does not match the tokenizer's {config.tokenizer.image_size}",
                fix=f"set data.image_size={config.tokenizer.image_size}",
            )
        if data_cfg.num_frames - 1 > config.transformer.max_sink_distance:
            raise UsageError(
                f"training clips of {data_cfg.num_frames} frames are longer than transformer.max_sink_distance + 1",
                why="inference places the sink at most max_sink_distance frames back, as training showed it",
                fix=f"set model.transformer.max_sink_distance={data_cfg.num_frames - 1}",
            )

    def loss(self, model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(model, VideoAR)
        if self._train == "layout_prior":
            assert model.layout_prior is not None
            with torch.no_grad(), torch.autocast(batch["video"].device.type, enabled=False):
                codes = [c[:, 0] for c in model.tokenizer.encode(batch["video"][:, :1].float())]  # frame 0, (B, l)
            prior = model.layout_prior
            return layout_loss(prior, codes, batch["text"], self._settings.condition_dropout, self._generator)
        tr = model.keyframe if self._train == "keyframe" else None
        return videoar_loss(model, batch["video"], batch["text"], self._settings, self._generator, transformer=tr)

    def checkpoint_config(self, model_cfg: VideoARModelConfig, data_cfg: VideoDataConfig) -> dict[str, Any]:
        if self._config is None:
            raise RuntimeError("checkpoint_config before build_model")
        config = {"kind": KIND, "model": to_dict(self._config), "data": to_dict(data_cfg)}
        return config if self._sampling is None else {**config, "sampling": self._sampling}

    def evaluate(self, model: nn.Module, model_cfg: VideoARModelConfig, data_cfg: VideoDataConfig) -> dict[str, float]:
        """Toy-world prompt adherence on held-out paraphrases (16 frames, guidance 3), for the model card."""
        from genmotion.video.evaluate import adherence_summary, eval_prompts
        from genmotion.video.videoar.pipeline import VideoARPipeline

        assert isinstance(model, VideoAR)
        if data_cfg.source != "toyworld":
            return {}
        pipe = VideoARPipeline(model)
        prompts = eval_prompts(min(data_cfg.eval_clips, 24), seed=2024)
        return adherence_summary(pipe, prompts, seeds=(0,), num_frames=16)
