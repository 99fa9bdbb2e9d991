"""Configs shared by the video generators (VideoAR, Ca2-VDM): the video tokenizer and the training data.

Frozen keyword-only dataclasses, mapped 1:1 onto `configs/video/*.yaml` by the strict loader.
Model configs hold architecture only; derived sizes are properties.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["VideoDataConfig", "VideoTokenizerConfig"]


def _check_scales(patch_nums: tuple[int, ...]) -> None:
    if not patch_nums or patch_nums[0] != 1 or any(b <= a for a, b in zip(patch_nums, patch_nums[1:], strict=False)):
        raise ValueError(f"patch_nums must increase strictly from 1 (coarse to fine), got {patch_nums}")


@dataclass(frozen=True, kw_only=True)
class VideoTokenizerConfig:
    """Causal-in-time multi-scale VQ tokenizer: per-frame conv encoder/decoder, causal temporal mixing of
    latents, VAR's residual quantiser per frame (`genmotion.image_core`).

    `widths` are the level widths at H/2, H/4, ... (finest first) of the encoder, which reads frames
    area-pooled by `input_pool` first; downsampling is input_pool * 2 ** len(widths). `decoder_widths`
    (default: `widths`) are the decoder's, finest first; it upsamples by 2 ** len(decoder_widths), which must
    equal the downsampling. A pooled encoder with a deeper decoder makes frames larger than the ones the tokens
    were learnt on (a 64x64 decoder for the tokens of 32x32 frames: same tokens, a finer picture).
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
    input_pool: int = 1
    decoder_widths: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        _check_scales(self.patch_nums)
        if self.temporal_residual and self.quant_resi != 0:
            raise ValueError("temporal_residual needs quant_resi: 0 (phi = identity, so code 0 adds nothing)")
        if self.deadzone < 0:
            raise ValueError(f"deadzone must be >= 0, got {self.deadzone}")
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"widths must be positive, got {self.widths}")
        if self.input_pool < 1 or self.input_pool & (self.input_pool - 1):
            raise ValueError(f"input_pool must be a power of two >= 1, got {self.input_pool}")
        if self.image_size != self.patch_nums[-1] * self.downsample:
            raise ValueError(
                f"image_size {self.image_size} must equal finest scale {self.patch_nums[-1]} x downsampling "
                f"{self.downsample} (input_pool x 2 ** len(widths))"
            )
        if 2 ** len(self.decoder_level_widths) != self.downsample:
            raise ValueError(
                f"the decoder upsamples by 2 ** len(decoder_widths) = {2 ** len(self.decoder_level_widths)}, "
                f"the encoder downsamples by {self.downsample}: give decoder_widths {len(self.widths)} + "
                f"log2(input_pool) levels"
            )

    @property
    def downsample(self) -> int:
        return self.input_pool * 2 ** len(self.widths)

    @property
    def decoder_level_widths(self) -> tuple[int, ...]:
        return self.widths if self.decoder_widths is None else self.decoder_widths

    @property
    def latent_size(self) -> int:
        return self.patch_nums[-1]

    @property
    def tokens_per_frame(self) -> int:
        return sum(p * p for p in self.patch_nums)


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
