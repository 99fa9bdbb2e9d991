"""Where VideoAR's tokens sit: the per-frame layout (next-scale tokens, then the frame's clean latent),
their levels and multi-scale temporal RoPE positions, and the training attention mask.

Per frame, with scales p_0 = 1 < p_1 < ... < p_{K-1} = P: the scale tokens (sum of p_s^2; scale 0 is the
text/start token) are predicted block-causally by scale; then the P^2 clean tokens (the finished frame's
f_hat) are what later frames attend to. Axes: T frames, N tokens per frame, L = T * N, S keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from genmotion.nn.rope import multiscale_positions

__all__ = ["ClipAttention", "ScaleLayout", "clip_attention", "context_frames"]


@dataclass(frozen=True)
class ScaleLayout:
    """Token layout of one VideoAR frame: its scale tokens for the schedule `patch_nums` (coarse to fine), then
    its clean tokens (not the flow loop's `genmotion.kv.FrameLayout`, which counts tokens per frame and chunk)."""

    patch_nums: tuple[int, ...]

    @property
    def num_scales(self) -> int:
        return len(self.patch_nums)

    @property
    def scale_sizes(self) -> tuple[int, ...]:
        return tuple(p * p for p in self.patch_nums)

    @property
    def scale_tokens(self) -> int:
        """N_s: tokens predicted per frame."""
        return sum(self.scale_sizes)

    @property
    def clean_tokens(self) -> int:
        """N_c: tokens of a finished frame in the context."""
        return self.patch_nums[-1] ** 2

    @property
    def tokens_per_frame(self) -> int:
        return self.scale_tokens + self.clean_tokens

    def scale_slice(self, scale: int) -> slice:
        begin = sum(self.scale_sizes[:scale])
        return slice(begin, begin + self.scale_sizes[scale])

    @cached_property
    def levels(self) -> torch.Tensor:
        """(N,) long: scale index of each token, K for the clean tokens."""
        sizes = (*self.scale_sizes, self.clean_tokens)
        return torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))

    def scale_positions(self, frame: int, scale: int) -> torch.Tensor:
        """(p^2, 3) float (t, y, x) of one scale's tokens: centres of the fine cells they cover."""
        p, P = self.patch_nums[scale], self.patch_nums[-1]
        return multiscale_positions(frame, p, p, P, P)

    def clean_positions(self, frame: int) -> torch.Tensor:
        """(P^2, 3) float positions of a frame's clean tokens (the finest grid)."""
        return self.scale_positions(frame, self.num_scales - 1)

    def frame_positions(self, frame: int) -> torch.Tensor:
        """(N, 3) positions of every token of one frame (scales, then clean)."""
        parts = [self.scale_positions(frame, s) for s in range(self.num_scales)]
        return torch.cat([*parts, self.clean_positions(frame)])

    def clip_positions(self, num_frames: int) -> torch.Tensor:
        """(T * N, 3) positions of a clip, frame after frame."""
        one = self.frame_positions(0)
        t = torch.arange(num_frames, dtype=one.dtype).repeat_interleave(one.shape[0])
        out = one.repeat(num_frames, 1)
        out[:, 0] = t
        return out


@dataclass(frozen=True)
class ClipAttention:
    """Which keys each frame's queries read in the training pass (gathered per frame, so attention costs
    T * N * S instead of (T * N)^2). index: (T, S) token indices into the clip, context frames' clean
    tokens first (padding points at token 0), then the frame's own N tokens; mask: (B or 1, T, N, S) bool."""

    index: torch.Tensor
    mask: torch.Tensor

    def to(self, device: torch.device | str) -> ClipAttention:
        return ClipAttention(self.index.to(device), self.mask.to(device))


def context_frames(frame: int, *, sink: int, window: int) -> list[int]:
    """Earlier frames a frame attends to: the first `sink` frames and the last `window` frames before it."""
    return [g for g in range(frame) if g < sink or g >= frame - window]


def clip_attention(
    layout: ScaleLayout,
    num_frames: int,
    *,
    sink: int,
    window: int,
    keep_frames: torch.Tensor | None = None,
) -> ClipAttention:
    """The training attention pattern of a clip (the rule the inference cache holds).

    Inside a frame: a scale token sees scale tokens of its own and coarser scales; a clean token sees its
    frame's clean tokens. Across frames: every token of frame f sees the clean tokens of the frames
    `context_frames(f)`, and with `keep_frames` (B, T, T) only where keep_frames[b, f, g] (random frame masking).
    """
    K, N, N_s, N_c = layout.num_scales, layout.tokens_per_frame, layout.scale_tokens, layout.clean_tokens
    slots = sink + window
    S = slots * N_c + N
    index = torch.zeros(num_frames, S, dtype=torch.long)
    valid = torch.zeros(num_frames, slots, dtype=torch.bool)
    source = torch.zeros(num_frames, slots, dtype=torch.long)  # which frame fills each context slot
    for f in range(num_frames):
        for j, g in enumerate(context_frames(f, sink=sink, window=window)):
            index[f, j * N_c : (j + 1) * N_c] = g * N + N_s + torch.arange(N_c)
            valid[f, j], source[f, j] = True, g
        index[f, slots * N_c :] = f * N + torch.arange(N)
    level = layout.levels
    own = (level[None, :] <= level[:, None]) & ((level[:, None] < K) | (level[None, :] == K))  # (N, N)
    if keep_frames is None:
        ctx = valid[None]  # (1, T, slots)
    else:
        ctx = valid[None] & keep_frames.gather(2, source[None].expand(keep_frames.shape[0], -1, -1))
    ctx = ctx.repeat_interleave(N_c, dim=2)[:, :, None, :].expand(-1, -1, N, -1)  # (B|1, T, N, slots * N_c)
    mask = torch.cat([ctx, own.expand(ctx.shape[0], num_frames, N, N)], dim=3)
    return ClipAttention(index, mask)
