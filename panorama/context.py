"""CubeComposer's context pool: what the model sees when it generates face f of window w.

Up to `history_windows` earlier windows (all six faces, as generated), the six faces of this window
(those already generated, the warped input for the rest, f included), and for f and its four neighbours
the nearest future stretch of the input whose coverage reaches the threshold. Training builds the very
same context from ground truth. Axes: N items (one face x one frame each), T frames, C channels, S face size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genmotion.panorama.config import CubeComposerConfig, SampleConfig
from genmotion.panorama.cube import NEIGHBOURS, pad_faces

__all__ = ["ROLE_FUTURE", "ROLE_INPUT", "ROLE_MADE", "ROLE_PAST", "Context", "ContextPool", "FaceTarget"]

ROLE_PAST, ROLE_MADE, ROLE_INPUT, ROLE_FUTURE = range(4)


@dataclass(frozen=True)
class Context:
    """Context items: pixels (N, 3, S, S) in [-1, 1], mask (N, 1, S, S), face (N,), time (N,) absolute
    frame index (also the sparse-attention group), role (N,)."""

    pixels: torch.Tensor
    mask: torch.Tensor
    face: torch.Tensor
    time: torch.Tensor
    role: torch.Tensor

    def __len__(self) -> int:
        return int(self.face.shape[0])


@dataclass(frozen=True)
class FaceTarget:
    """The call's own inputs: the face, its window's frame times (T,), and its condition padded from
    the current cube: pixels (T, 3, S + 2P, S + 2P), mask (T, 1, S + 2P, S + 2P)."""

    face: int
    times: torch.Tensor
    cond: torch.Tensor
    mask: torch.Tensor


def _items(pixels: torch.Tensor, mask: torch.Tensor, faces: list[int], times: list[int], role: int) -> Context:
    n = len(faces)
    return Context(
        pixels,
        mask,
        torch.tensor(faces, dtype=torch.long),
        torch.tensor(times, dtype=torch.long),
        torch.full((n,), role, dtype=torch.long),
    )


def _cat(parts: list[Context], like: torch.Tensor) -> Context:
    if not parts:
        S = like.shape[-1]
        e = torch.zeros(0, dtype=torch.long)
        return Context(like.new_zeros(0, 3, S, S), like.new_zeros(0, 1, S, S), e, e, e)
    return Context(*(torch.cat([getattr(p, k) for p in parts]) for k in ("pixels", "mask", "face", "time", "role")))


class ContextPool:
    """Builds contexts over a video's cube condition: cond (N, 6, 3, S, S), mask (N, 6, 1, S, S)."""

    def __init__(self, cond: torch.Tensor, mask: torch.Tensor, config: CubeComposerConfig, sample: SampleConfig):
        self.cond, self.mask, self.config, self.sample = cond, mask, config, sample
        self.coverage = mask.flatten(2).mean(-1)  # (N, 6)
        self.history: list[tuple[int, torch.Tensor]] = []  # (start frame, cube (T, 6, 3, S, S))

    def add_window(self, start: int, cube: torch.Tensor) -> None:
        """Record a finished window; only the last `history_windows` are kept."""
        self.history.append((start, cube))
        self.history = self.history[-self.config.history_windows :] if self.config.history_windows else []

    def future_start(self, face: int, end: int) -> int | None:
        """Nearest frame tau >= end whose next `fragment_frames` frames cover `face` by >= the threshold."""
        n, k = self.cond.shape[0], self.config.fragment_frames
        for tau in range(end, n):
            if float(self.coverage[tau : tau + k, face].mean()) >= self.config.coverage_threshold:
                return tau
        return None

    def current_cube(self, start: int, end: int, made: dict[int, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """This window's cube (T, 6, 3, S, S) and mask: generated faces (mask 1) over the warped input."""
        cube, mask = self.cond[start:end].clone(), self.mask[start:end].clone()
        for f, px in made.items():
            cube[:, f], mask[:, f] = px, 1.0
        return cube, mask

    def target(self, face: int, start: int, end: int, made: dict[int, torch.Tensor]) -> FaceTarget:
        cube, mask = self.current_cube(start, end, made)
        if self.sample.independent:
            keep = torch.zeros(6, dtype=torch.bool)
            keep[face] = True
            cube, mask = cube * keep[:, None, None, None], mask * keep[:, None, None, None]
        P = self.config.pad_pixels
        cond, m = pad_faces(cube, P, (face,))[:, 0], pad_faces(mask, P, (face,))[:, 0]
        if not self.sample.padding and P:
            band = torch.ones_like(m)
            band[..., P:-P, P:-P] = 0
            cond, m = cond * (1 - band), m * (1 - band)
        return FaceTarget(face, torch.arange(start, end), cond, m)

    def context(self, face: int, start: int, end: int, made: dict[int, torch.Tensor]) -> Context:
        """The context of generating `face` over frames [start, end) after the faces in `made`."""
        T = end - start
        parts: list[Context] = []
        if not self.sample.independent:
            for s, cube in self.history:
                t = cube.shape[0]
                faces, times = [f for _ in range(t) for f in range(6)], [s + i for i in range(t) for _ in range(6)]
                parts.append(_items(cube.flatten(0, 1), torch.ones_like(cube[:, :, :1]).flatten(0, 1), faces, times, 0))
            cube, mask = self.current_cube(start, end, made)
            for f in range(6):
                role = ROLE_MADE if f in made else ROLE_INPUT
                parts.append(_items(cube[:, f], mask[:, f], [f] * T, list(range(start, end)), role))
        else:
            parts.append(
                _items(
                    self.cond[start:end, face],
                    self.mask[start:end, face],
                    [face] * T,
                    list(range(start, end)),
                    ROLE_INPUT,
                )
            )
        if self.sample.future and not self.sample.independent:
            for g in (face, *NEIGHBOURS[face]):
                tau = self.future_start(g, end)
                if tau is None:
                    continue
                stop = min(tau + self.config.fragment_frames, self.cond.shape[0])
                px, m = self.cond[tau:stop, g], self.mask[tau:stop, g]
                parts.append(_items(px, m, [g] * (stop - tau), list(range(tau, stop)), ROLE_FUTURE))
        return _cat(parts, self.cond)
