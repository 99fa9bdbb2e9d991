"""Rotary position embeddings (RoFormer) in 1-D, 2-D, 3-D and VideoAR's multi-scale temporal variant.

RoPE is applied to q and k at attention time, never stored, so a KV cache holds keys before RoPE
together with their positions and a window can slide without bound. Axes: B batch, H heads,
L tokens, D head dim, A position axes. Pairs (i, i + D/2) rotate together ("rotate half");
with several axes the D/2 frequencies are split between them in the order the axes are given.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from genmotion.errors import UsageError

__all__ = [
    "Rotary",
    "apply_rope",
    "grid_positions_2d",
    "grid_positions_3d",
    "multiscale_positions",
    "rotate",
    "rotate_full",
    "rotation_tables",
]


class Rotary:
    """RoPE angles for positions with one or more axes (a plain object: no parameters, no buffers).

    `axes_dims` splits the head dim between axes, e.g. (16, 24, 24) for (t, y, x) with head dim 64;
    each entry must be even and they must sum to `head_dim`. None means one axis over the full head.
    """

    def __init__(self, head_dim: int, axes_dims: Sequence[int] | None = None, base: float = 10000.0) -> None:
        axes = (head_dim,) if axes_dims is None else tuple(int(a) for a in axes_dims)
        if head_dim % 2 or any(a % 2 or a <= 0 for a in axes) or sum(axes) != head_dim:
            raise UsageError(
                f"RoPE axes {axes} do not fit head dim {head_dim}",
                why="each axis rotates pairs of channels, so every part must be even and they must sum to the head dim",
                fix="pick even axis sizes that add up to the head dim, e.g. (16, 24, 24) for 64",
            )
        self.head_dim, self.axes_dims, self.base = head_dim, axes, float(base)
        self._frequencies: dict[torch.device, list[torch.Tensor]] = {}  # per device, made on first use

    @property
    def num_axes(self) -> int:
        return len(self.axes_dims)

    def inverse_frequencies(self, device: torch.device | None = None) -> list[torch.Tensor]:
        """One (a/2,) frequency vector per axis: base^(-2i/a) (computed once per device)."""
        key = torch.device("cpu") if device is None else torch.device(device)
        if key not in self._frequencies:
            self._frequencies[key] = [
                self.base ** (-torch.arange(0, a, 2, device=key, dtype=torch.float32) / a) for a in self.axes_dims
            ]
        return self._frequencies[key]

    def angles(self, positions: torch.Tensor) -> torch.Tensor:
        """Positions (..., L) for one axis or (..., L, A) for A axes -> angles (..., L, D/2) in float32."""
        pos = positions.to(torch.float32)
        if self.num_axes == 1:
            pos = pos.unsqueeze(-1)
        if pos.shape[-1] != self.num_axes:
            raise UsageError(
                f"positions have {pos.shape[-1]} axes but this RoPE has {self.num_axes}",
                fix="give positions shaped (..., L, A) with one column per RoPE axis",
            )
        freqs = self.inverse_frequencies(positions.device)
        if len(freqs) == 1:
            return pos * freqs[0]
        return torch.cat([pos[..., i : i + 1] * f for i, f in enumerate(freqs)], dim=-1)

    def __call__(self, x_BHLD: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Rotate q or k (..., L, D) by `positions`."""
        return apply_rope(x_BHLD, self.angles(positions))


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """x (..., L, D) rotated by angles (..., L, D/2) (broadcast over leading axes); same dtype as x."""
    return rotate(x, angles.cos().to(x.dtype), angles.sin().to(x.dtype))


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """`apply_rope` with the angles' cos and sin (..., L, D/2) given: rotate-half pairs (i, i + D/2)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def rotation_tables(angles: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Angles (..., L, D/2) -> (cos | cos) and (-sin | sin), each (..., L, D): the tables of `rotate_full`."""
    cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
    return torch.cat([cos, cos], dim=-1), torch.cat([-sin, sin], dim=-1)


def rotate_full(x: torch.Tensor, cos_full: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """`rotate` with full-width tables from `rotation_tables`, in 4 ops instead of 7 (for tables reused across
    calls); bit-identical to it: x1 cos + x2 (-sin) rounds exactly as x1 cos - x2 sin."""
    half = x.shape[-1] // 2
    return x * cos_full + torch.cat([x[..., half:], x[..., :half]], dim=-1) * sin_signed


def grid_positions_2d(height: int, width: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """(height*width, 2) integer (y, x) positions in raster order."""
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    return torch.stack([ys.reshape(-1), xs.reshape(-1)], dim=-1)


def grid_positions_3d(
    frames: int, height: int, width: int, *, start_frame: int = 0, device: torch.device | str | None = None
) -> torch.Tensor:
    """(frames*height*width, 3) integer (t, y, x) positions, frame-major raster order."""
    ts = torch.arange(start_frame, start_frame + frames, device=device)
    yx = grid_positions_2d(height, width, device=device)
    t = ts.repeat_interleave(height * width)
    return torch.cat([t.unsqueeze(-1), yx.repeat(frames, 1)], dim=-1)


def multiscale_positions(
    frame: int,
    height: int,
    width: int,
    fine_height: int,
    fine_width: int,
    *,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(height*width, 3) float (t, y, x) for one scale of a next-scale frame (VideoAR's multi-scale temporal RoPE).

    Time is the frame index; a coarse cell sits at the centre of the fine cells it covers, in fine-grid
    coordinates: y = (i + 0.5) * fine_height / height - 0.5, so every scale spans the same [0, fine) range
    and the finest scale gets the integer grid.
    """
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * (fine_height / height) - 0.5
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * (fine_width / width) - 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    t = torch.full((height * width,), float(frame), device=device)
    return torch.stack([t, gy.reshape(-1), gx.reshape(-1)], dim=-1)
