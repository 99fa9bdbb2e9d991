"""Configs of the Ca2-VDM-style causal flow video model: the flow transformer and what a `ca2vdm` checkpoint holds.

Frozen keyword-only dataclasses, mapped 1:1 onto `configs/video/ca2vdm*.yaml` by the strict loader.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genmotion.kv.protocol import FrameLayout
from genmotion.video.config import VideoTokenizerConfig

__all__ = ["Ca2VDMConfig", "CausalFlowConfig"]


@dataclass(frozen=True, kw_only=True)
class CausalFlowConfig:
    """The flow transformer. `context_frames`: the FIFO window of clean frames a chunk reads (training
    shows exactly this window, so any video length stays in range); `patch`: latent pixels per token side."""

    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    cond_dim: int = 128
    text_dim: int = 384
    patch: int = 2
    frames_per_chunk: int = 2
    context_frames: int = 4
    rope_base: float = 100.0

    def __post_init__(self) -> None:
        if min(self.patch, self.frames_per_chunk, self.context_frames) < 1:
            raise ValueError("patch, frames_per_chunk and context_frames must be >= 1")


@dataclass(frozen=True, kw_only=True)
class Ca2VDMConfig:
    tokenizer: VideoTokenizerConfig = field(default_factory=VideoTokenizerConfig)
    flow: CausalFlowConfig = field(default_factory=CausalFlowConfig)

    def __post_init__(self) -> None:
        if self.tokenizer.latent_size % self.flow.patch:
            raise ValueError(f"latent size {self.tokenizer.latent_size} is not a multiple of patch {self.flow.patch}")

    @property
    def tokens_per_frame(self) -> int:
        return (self.tokenizer.latent_size // self.flow.patch) ** 2

    @property
    def token_channels(self) -> int:
        return self.tokenizer.latent_channels * self.flow.patch**2

    @property
    def layout(self) -> FrameLayout:
        return FrameLayout(
            tokens_per_frame=self.tokens_per_frame,
            channels=self.token_channels,
            frames_per_chunk=self.flow.frames_per_chunk,
        )
