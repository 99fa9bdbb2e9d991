"""Configs of VideoAR (next-frame x next-scale text-to-video): transformer, checkpoint, sampling.

Frozen keyword-only dataclasses, mapped 1:1 onto `configs/video/videoar*.yaml` by the strict loader (the
tokenizer and data configs are the video family's, `genmotion.video.config`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from genmotion.video.config import VideoTokenizerConfig
from genmotion.video.videoar.layout_prior import LayoutPriorConfig

__all__ = ["SamplingConfig", "VideoARConfig", "VideoARTransformerConfig"]


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
    """What a `videoar` checkpoint holds: a tokenizer and a transformer that fit together, and optionally a
    `keyframe` transformer (same tokenizer) that draws frame 0 from the text alone, trained on single frames;
    the main transformer then predicts every later frame from the frames before it. `layout_prior`: a small
    causal transformer that draws frame 0's coarsest scales token by token before the frame's transformer
    draws the rest (`genmotion.video.videoar.layout_prior`)."""

    tokenizer: VideoTokenizerConfig = field(default_factory=VideoTokenizerConfig)
    transformer: VideoARTransformerConfig = field(default_factory=VideoARTransformerConfig)
    keyframe: VideoARTransformerConfig | None = None
    layout_prior: LayoutPriorConfig | None = None


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    """Sampling settings (what `stream()` takes as keywords). guidance_scale s: logits = uncond + s (cond - uncond);
    s = 1 is plain conditional sampling; schedule "linear" ramps VAR-style from 1 at the coarsest scale.
    `residual_guidance`: the scale for the frames a temporal-residual model codes as changes (every frame after
    the first; None = guidance_scale). Guidance amplifies what the prompt adds, and a change frame adds to the
    frame before, so a strong scale there makes objects grow from frame to frame. `first_frame_guidance`: the
    scale of frame 0, the one frame drawn from the text alone (by the keyframe transformer where the model has
    one; None = guidance_scale). Frame 0 wants less than the later frames: a strong scale there draws oversized
    objects on the wrong background, which every later frame then inherits. `first_frame_candidates` N: frame 0
    is drawn N times per video and the draw whose tokens the text explains best is kept (the sum over its
    tokens of log p(token | text) - log p(token | no text), read from the two passes guidance makes); N = 1
    draws once. `copy_threshold` t in [0, 1]: in every frame after the first, a token whose previous-frame
    code (same scale, same place) has probability >= t under the guided distribution keeps that code instead of
    being sampled (0 = off; not for temporal-residual models, which code "no change" themselves). Sampling
    re-draws a steady background with every frame; this keeps what the model is fairly sure did not change.
    `copy_scales` k: the copy rule acts on the k coarsest scales only (0 = on every scale). The coarse codes
    hold the background and the object's place; a finer code that keeps its old value where an object grows
    or shrinks by a few pixels holds the old size. `layout_guidance`: the scale of the layout prior's draw of
    frame 0's coarsest scales, on a model that has one (None = frame 0's scale)."""

    guidance_scale: float = 3.0
    guidance_schedule: Literal["constant", "linear"] = "constant"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.0
    residual_guidance: float | None = None
    first_frame_guidance: float | None = None
    first_frame_candidates: int = 1
    copy_threshold: float = 0.0
    copy_scales: int = 0
    layout_guidance: float | None = None

    @property
    def frame0_guidance(self) -> float:
        """Frame 0's scale: `first_frame_guidance`, else `guidance_scale`."""
        return self.guidance_scale if self.first_frame_guidance is None else self.first_frame_guidance

    @property
    def guided(self) -> bool:
        """Whether any frame is guided: then every row has an unconditional twin (2B rows)."""
        return (
            self.guidance_scale != 1.0
            or self.residual_guidance not in (None, 1.0)
            or self.first_frame_guidance not in (None, 1.0)
        )
