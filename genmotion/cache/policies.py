"""Cache policies of the chunked causal flow loop: Recompute (baseline), SharedClean (Ca2-VDM), RollingWindow.

All three implement one attention rule, so they are exact against each other in fp32: a token of the
chunk that starts at frame s sees earlier frames g when g < sink or g >= s - window (and its own chunk
frame-causally). `Recompute` enforces it with a mask over the whole history at every evaluation;
the KV policies hold exactly those frames' keys/values, written once per chunk by a forward over the
clean chunk at `CLEAN_TIME`, and read by every denoising evaluation of later chunks.
"""

from __future__ import annotations

import torch

from genmotion.errors import UsageError
from genmotion.kv.layered import LayeredKVCache
from genmotion.kv.protocol import FlowModel, FrameLayout, PolicyBase
from genmotion.nn.masks import MaskArg, chunk_window_mask
from genmotion.sampling.flow import CLEAN_TIME

__all__ = ["Recompute", "RollingWindow", "SharedClean"]


def _check_window(sink: int, window: int | None) -> None:
    if sink < 0 or (window is not None and window < 1):
        raise UsageError(
            f"context window needs sink >= 0 and window >= 1 frames, got sink={sink} window={window}",
            fix="use window=None for unbounded context",
        )


def _whole_frames(layout: FrameLayout, x_BLC: torch.Tensor) -> int:
    L, N = x_BLC.shape[1], layout.tokens_per_frame
    if L % N or x_BLC.shape[2] != layout.channels:
        raise UsageError(
            f"chunk tokens shaped {tuple(x_BLC.shape)} are not whole frames of {N} tokens x {layout.channels} channels"
        )
    return L // N


class Recompute(PolicyBase):
    """No KV cache: every evaluation runs the model over all committed clean frames followed by the noisy chunk.

    With `window` set, the history is masked to the same sink + window rule the KV policies implement,
    which makes this the exact reference for them. Holds the clean latents of the whole video.
    """

    def __init__(self, *, sink: int = 0, window: int | None = None) -> None:
        super().__init__()
        _check_window(sink, window)
        self.sink, self.window = sink, window
        self._tokens: torch.Tensor | None = None  # (B, max_frames * N, C) clean history, then the chunk
        self._chunk_start: torch.Tensor | None = None  # (max_frames,) first frame of the chunk each frame was made in
        self._frames = 0

    def start(self, model: FlowModel, layout: FrameLayout, *, batch: int, max_frames: int, like: torch.Tensor) -> None:
        self.layout, self._frames = layout, 0
        self._tokens = like.new_zeros(batch, max_frames * layout.tokens_per_frame, layout.channels)
        self._chunk_start = torch.zeros(max_frames, dtype=torch.long, device=like.device)

    def _place(self, x_BLC: torch.Tensor, start_frame: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Write x after the history; returns history + x (B, S, C), their frame ids (S,), and where x begins."""
        layout = self._layout()
        assert self._tokens is not None and self._chunk_start is not None
        frames = _whole_frames(layout, x_BLC)
        if start_frame != self._frames or (start_frame + frames) * layout.tokens_per_frame > self._tokens.shape[1]:
            raise UsageError(
                f"chunk at frame {start_frame} does not follow the {self._frames} committed frames within the video",
                fix="denoise and commit chunks in order, within max_frames",
            )
        begin = start_frame * layout.tokens_per_frame
        end = begin + x_BLC.shape[1]
        self._tokens[:, begin:end] = x_BLC
        self._chunk_start[start_frame : start_frame + frames] = start_frame
        return self._tokens[:, :end], layout.frame_ids(0, end, device=x_BLC.device), begin

    def _mask(self, frame_ids: torch.Tensor) -> MaskArg:
        if self.window is None:
            return "causal"
        assert self._chunk_start is not None
        starts = self._chunk_start[frame_ids]
        return chunk_window_mask(frame_ids, starts, frame_ids, sink=self.sink, window=self.window)

    def velocity(self, model: FlowModel, x_BLC: torch.Tensor, t: float, *, start_frame: int) -> torch.Tensor:
        inputs, frame_ids, begin = self._place(x_BLC, start_frame)
        t_BL = inputs.new_full(inputs.shape[:2], CLEAN_TIME)
        t_BL[:, begin:] = t
        out = self._call(model, inputs, t_BL, frame_ids, mask=self._mask(frame_ids))
        return out[:, begin:]

    def commit(self, model: FlowModel, clean_BLC: torch.Tensor, *, start_frame: int) -> None:
        frames = _whole_frames(self._layout(), clean_BLC)
        self._place(clean_BLC, start_frame)
        self._frames += frames

    def bytes_held(self) -> int:
        held = [t for t in (self._tokens, self._chunk_start) if t is not None]
        return sum(t.nbytes for t in held)


class _CleanContextPolicy(PolicyBase):
    """KV cache of clean context, written by one forward per chunk at CLEAN_TIME and read by every evaluation."""

    def __init__(self, *, sink: int, window: int | None) -> None:
        super().__init__()
        _check_window(sink, window)
        self.sink, self.window = sink, window
        self.cache: LayeredKVCache | None = None
        self._frames = 0

    def start(self, model: FlowModel, layout: FrameLayout, *, batch: int, max_frames: int, like: torch.Tensor) -> None:
        self.layout, self._frames = layout, 0
        N = layout.tokens_per_frame
        if self.window is None:
            self.cache = model.new_cache(batch, max_frames * N)
        else:
            self.cache = model.new_cache(batch, (self.sink + self.window) * N, ring=True, sink=self.sink * N)

    def _state(self) -> LayeredKVCache:
        if self.cache is None:
            raise UsageError(f"{type(self).__name__} was used before start()", fix="call policy.start(...) first")
        return self.cache

    def velocity(self, model: FlowModel, x_BLC: torch.Tensor, t: float, *, start_frame: int) -> torch.Tensor:
        layout, cache = self._layout(), self._state()
        _whole_frames(layout, x_BLC)
        if start_frame != self._frames:
            raise UsageError(f"chunk at frame {start_frame} does not follow the {self._frames} committed frames")
        frame_ids = layout.frame_ids(start_frame, x_BLC.shape[1], device=x_BLC.device)
        t_BL = x_BLC.new_full(x_BLC.shape[:2], t)
        return self._call(model, x_BLC, t_BL, frame_ids, cache=cache.read_only(), mask="causal")

    def commit(self, model: FlowModel, clean_BLC: torch.Tensor, *, start_frame: int) -> None:
        layout, cache = self._layout(), self._state()
        frames = _whole_frames(layout, clean_BLC)
        self._check_commit(start_frame)
        frame_ids = layout.frame_ids(start_frame, clean_BLC.shape[1], device=clean_BLC.device)
        t_BL = clean_BLC.new_full(clean_BLC.shape[:2], CLEAN_TIME)
        self._call(model, clean_BLC, t_BL, frame_ids, cache=cache, mask="causal")
        self._frames += frames

    def _check_commit(self, start_frame: int) -> None:
        """A commit must continue the committed frames (call it before touching the cache)."""
        if start_frame != self._frames:
            raise UsageError(f"commit at frame {start_frame} does not follow the {self._frames} committed frames")

    def bytes_held(self) -> int:
        return 0 if self.cache is None else self.cache.nbytes()


class SharedClean(_CleanContextPolicy):
    """Ca2-VDM: one clean-chunk forward writes K/V that every later denoising step reads; FIFO of the last P frames.

    `context_frames=None` keeps every frame. Exact w.r.t. `Recompute(window=context_frames)` for a causal
    model (and w.r.t. plain `Recompute()` when nothing is evicted).
    """

    def __init__(self, *, context_frames: int | None = None) -> None:
        super().__init__(sink=0, window=context_frames)


class RollingWindow(_CleanContextPolicy):
    """Self-Forcing/LongLive: keep the first `sink` frames and the last `window` frames of context (a ring cache)."""

    def __init__(self, *, sink: int, window: int) -> None:
        super().__init__(sink=sink, window=window)
