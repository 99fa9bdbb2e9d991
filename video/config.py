"""Configs of VideoAR (next-frame x next-scale text-to-video): tokenizer, transformer, data, sampling.

Frozen keyword-only dataclasses, mapped 1:1 onto `configs/video/*.yaml` by the strict loader.
Model configs hold architecture only; derived sizes are properties.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "SamplingConfig",
    "VideoARConfig",
    "VideoARTransformerConfig",
    "VideoDataConfig",
    "VideoTokenizerConfig",
]


def _check_scales(patch_nums: tuple[int, ...]) -> None:
    if not patch_nums or patch_nums[0] != 1 or any(b <= a for a, b in zip(patch_nums, patch_nums[1:], strict=False)):
        raise ValueError(f"patch_nums must increase strictly from 1 (coarse to fine), got {patch_nums}")


@dataclass(frozen=True, kw_only=True)
class VideoTokenizerConfig:
    """Causal-in-time multi-scale VQ tokenizer: per-frame conv encoder/decoder, causal temporal mixing of
    latents, VAR's residual quantiser per frame (`genmotion.image_core`).

    `widths` are the level widths at H/2, H/4, ... (finest first); downsampling is 2 ** len(widths).
    `temporal_residual`: frames after the first code only their change from the previous frame's quantised
    latent (`genmotion.video.residual`), with code 0 = no change for residuals below `deadzone` (mean square
    per channel); needs `quant_resi: 0`.
    """

    image_size: int = 32
    widths: tuple[int, ...] = (32, 64)
    latent_channels: int = 16
    vocab_size: int = 512
    patch_nums: tuple[int, ...] = (1, 2, 4, 8)
    quant_resi: float = 0.5
    share_quant_resi: int = 4
    beta: float = 0.25
    temporal_residual: bool = False
    deadzone: float = 0.0

    def __post_init__(self) -> None:
        _check_scales(self.patch_nums)
        if self.temporal_residual and self.quant_resi != 0:
            raise ValueError("temporal_residual needs quant_resi: 0 (phi = identity, so code 0 adds nothing)")
        if self.deadzone < 0:
            raise ValueError(f"deadzone must be >= 0, got {self.deadzone}")
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"widths must be positive, got {self.widths}")
        if self.image_size != self.patch_nums[-1] * self.downsample:
            raise ValueError(
                f"image_size {self.image_size} must equal finest scale {self.patch_nums[-1]} x downsampling "
                f"{self.downsample} (2 ** len(widths))"
            )

    @property
    def downsample(self) -> int:
        return 2 ** len(self.widths)

    @property
    def latent_size(self) -> int:
        return self.patch_nums[-1]

    @property
    def tokens_per_frame(self) -> int:
        return sum(p * p for p in self.patch_nums)


@dataclass(frozen=True, kw_only=True)
class VideoARTransformerConfig:
    """The next-frame x next-scale transformer. Attention rule (training and inference alike): a frame sees
    the first `sink_frames` frames and the last `window_frames` frames before it, through their clean latents.

    `max_sink_distance`: the largest frame distance to a sink seen in training (clip length - 1); at
    inference the sink's time position is moved up to that distance, so the RoPE angles stay in range
    however long the video runs. `rope_axes` splits the head dim between (time, y, x).
    """

    width: int = 96
    depth: int = 4
    heads: int = 3
    mlp_ratio: float = 4.0
    text_dim: int = 384
    rope_axes: tuple[int, ...] = (8, 12, 12)
    rope_base: float = 100.0
    sink_frames: int = 1
    window_frames: int = 3
    max_sink_distance: int = 5

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by {self.heads} heads")
        if len(self.rope_axes) != 3 or sum(self.rope_axes) != self.width // self.heads:
            raise ValueError(
                f"rope_axes {self.rope_axes} must be 3 sizes (t, y, x) adding up to the head dim {self.head_dim}"
            )
        if self.sink_frames < 0 or self.window_frames < 1 or self.max_sink_distance < self.window_frames:
            raise ValueError(
                f"need sink_frames >= 0, window_frames >= 1 and max_sink_distance >= window_frames, got "
                f"{self.sink_frames}, {self.window_frames}, {self.max_sink_distance}"
            )

    @property
    def head_dim(self) -> int:
        return self.width // self.heads


@dataclass(frozen=True, kw_only=True)
class VideoARConfig:
    """What a `videoar` checkpoint holds: a tokenizer and a transformer that fit together."""

    tokenizer: VideoTokenizerConfig = field(default_factory=VideoTokenizerConfig)
    transformer: VideoARTransformerConfig = field(default_factory=VideoARTransformerConfig)


@dataclass(frozen=True, kw_only=True)
class VideoDataConfig:
    """Training clips: the procedural toy world, or a folder of the user's videos with a JSONL sidecar.

    folder: videos (any FFmpeg format or PNG folders) listed in `captions` (default `<folder>/captions.jsonl`),
    one `{"path": ..., "caption": ...}` per line, paths relative to the folder. Frames are resized
    (shorter side) and centre-cropped to `image_size`; clips of `num_frames` start at random frames,
    `frame_stride` apart. caption_vocabulary: the toy world's training captions, "basic" (the training
    templates and words) or "rich" (also more templates and synonyms, none of them held out).
    """

    source: Literal["toyworld", "folder"] = "toyworld"
    image_size: int = 32
    num_frames: int = 6
    folder: str | None = None
    captions: str | None = None
    frame_stride: int = 1
    two_object_probability: float = 0.3
    max_start_frame: int = 256
    eval_clips: int = 32
    caption_vocabulary: Literal["basic", "rich"] = "basic"

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.image_size < 8 or self.frame_stride < 1:
            raise ValueError("need num_frames >= 1, image_size >= 8 and frame_stride >= 1")
        if self.source == "folder" and not self.folder:
            raise ValueError("data.source is 'folder' but data.folder is not set")


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    """Sampling settings (what `stream()` takes as keywords). guidance_scale s: logits = uncond + s (cond - uncond);
    s = 1 is plain conditional sampling; schedule "linear" ramps VAR-style from 1 at the coarsest scale.
    `residual_guidance`: the scale for the frames a temporal-residual model codes as changes (every frame after
    the first; None = guidance_scale). Guidance amplifies what the prompt adds, and a change frame adds to the
    frame before, so a strong scale there makes objects grow from frame to frame."""

    guidance_scale: float = 3.0
    guidance_schedule: Literal["constant", "linear"] = "constant"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.0
    residual_guidance: float | None = None

    @property
    def guided(self) -> bool:
        """Whether any frame is guided: then every row has an unconditional twin (2B rows)."""
        return self.guidance_scale != 1.0 or self.residual_guidance not in (None, 1.0)
