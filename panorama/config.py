"""Configuration of the CubeComposer panorama generator: the model's architecture, the sampling settings
(with the ablation switches the bench uses) and the output sizes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from genmotion.errors import UsageError

__all__ = ["FOV_RANGE", "OUTPUT_SIZES", "CubeComposerConfig", "SampleConfig", "check_fov", "output_size"]

# equirect (width, height) of each --size; the face size of the cube behind it is width / 4
OUTPUT_SIZES: dict[str, tuple[int, int]] = {"1k": (1024, 512), "2k": (2048, 1024), "4k": (3840, 1920)}


def output_size(name: str) -> tuple[int, int]:
    """(width, height) of a size name; an unknown name is a usage error."""
    key = str(name).lower()
    if key not in OUTPUT_SIZES:
        raise UsageError(f"unknown size {name!r}", fix=f"use one of {', '.join(OUTPUT_SIZES)}")
    return OUTPUT_SIZES[key]


FOV_RANGE = (10.0, 170.0)


def check_fov(fov: float, where: str = "--fov") -> float:
    """A horizontal field of view strictly inside (10, 170) degrees, else a usage error."""
    if not isinstance(fov, int | float) or not math.isfinite(fov) or not FOV_RANGE[0] < fov < FOV_RANGE[1]:
        raise UsageError(
            f"{where} {fov} is outside (10, 170) degrees", fix="give the horizontal field of view, e.g. 90"
        )
    return float(fov)


@dataclass(frozen=True, kw_only=True)
class CubeComposerConfig:
    """The flow transformer that generates one cube face x one time window per call.

    Faces are `face_size` pixels; tokens are `patch` x `patch` pixel cells (the latent of this toy model is
    the pixel patch itself: 3 * patch^2 channels); a generated face is padded by `pad_cells` token cells of
    its neighbours. With `overlap` > 0 each token's data estimate also covers `overlap` pixels of its
    neighbours and the overlapping estimates are averaged, so neighbouring tokens agree across their shared
    boundary, the cube seams included (every seam is a token boundary). `window` frames per call; the
    context pool holds up to `history_windows` earlier windows and future fragments of `fragment_frames`
    frames whose coverage reaches `coverage_threshold`.
    """

    face_size: int = 16
    patch: int = 4
    pad_cells: int = 1
    overlap: int = 0
    window: int = 4
    width: int = 64
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    rope_base: float = 100.0
    rope_axes: tuple[int, ...] = (4, 6, 6)  # (t, row, col) parts of the head dim
    history_windows: int = 2
    fragment_frames: int = 4
    coverage_threshold: float = 0.1

    def __post_init__(self) -> None:
        if self.face_size % self.patch:
            raise ValueError(f"face_size {self.face_size} must be a multiple of patch {self.patch}")
        if self.width % self.heads or sum(self.rope_axes) != self.width // self.heads:
            raise ValueError(f"rope_axes {self.rope_axes} must sum to the head dim {self.width // self.heads}")
        if min(self.window, self.depth, self.heads, self.patch) < 1 or self.pad_cells < 0:
            raise ValueError("window, depth, heads and patch must be >= 1 and pad_cells >= 0")
        if not 0 <= self.overlap <= self.patch // 2:
            raise ValueError(f"overlap {self.overlap} must be in 0..patch // 2 = {self.patch // 2}")

    @property
    def cells(self) -> int:
        """Token cells per face side."""
        return self.face_size // self.patch

    @property
    def pad_pixels(self) -> int:
        return self.pad_cells * self.patch

    @property
    def token_channels(self) -> int:
        return 3 * self.patch * self.patch


@dataclass(frozen=True, kw_only=True)
class SampleConfig:
    """How a panorama is sampled. The switches after `solver` are the ablations of the bench: `rope`
    "strip" drops the cube cross layout, `padding` False generates unpadded faces without blending,
    `attention` "full" lets context tokens attend to everything, `future` False drops future fragments,
    `independent` True generates each face from its own input only (no other face, no history), `blend`
    "one_sided" blends each face's padding into the neighbours made before it instead of cross-fading every
    seam between both faces' predictions ("both")."""

    num_steps: int = 8
    solver: Literal["euler", "heun"] = "euler"
    order: Literal["coverage", "fixed"] = "coverage"
    rope: Literal["cube", "strip"] = "cube"
    padding: bool = True
    attention: Literal["sparse", "full"] = "sparse"
    future: bool = True
    independent: bool = False
    blend: Literal["both", "one_sided"] = "both"

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
