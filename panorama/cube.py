"""CubeComposer's cube bookkeeping (Li et al., CVPR 2026): face adjacency, the padder that grows a face by
strips of its rotated neighbours and blends generated strips back with a linear ramp, the coverage
planner, and the cube-aware RoPE positions on the unfolded cross.

Faces are F R B L U D (indices 0-5) seen from inside, upright as in the dice cross. Axes: C channels,
S face size, P padding width, c token cells per face side, T frames.
"""

from __future__ import annotations

import torch

from genmotion.data.toyworld.raycast import CUBE_FACES

__all__ = [
    "NEIGHBOURS",
    "PAD_TABLE",
    "blend_back",
    "blend_seams",
    "cross_positions",
    "face_coverage",
    "pad_faces",
    "plan_faces",
    "strip_positions",
]

F_, R_, B_, L_, U_, D_ = range(6)
Side = str  # "top" | "bottom" | "left" | "right"
# face -> {side: (neighbour, neighbour's edge, quarter turns counter-clockwise applied to the strip)}
PAD_TABLE: dict[int, dict[Side, tuple[int, Side, int]]] = {
    F_: {"top": (U_, "bottom", 0), "bottom": (D_, "top", 0), "left": (L_, "right", 0), "right": (R_, "left", 0)},
    R_: {"top": (U_, "right", -1), "bottom": (D_, "right", 1), "left": (F_, "right", 0), "right": (B_, "left", 0)},
    B_: {"top": (U_, "top", 2), "bottom": (D_, "bottom", 2), "left": (R_, "right", 0), "right": (L_, "left", 0)},
    L_: {"top": (U_, "left", 1), "bottom": (D_, "left", -1), "left": (B_, "right", 0), "right": (F_, "left", 0)},
    U_: {"top": (B_, "top", 2), "bottom": (F_, "top", 0), "left": (L_, "top", -1), "right": (R_, "top", 1)},
    D_: {"top": (F_, "bottom", 0), "bottom": (B_, "bottom", 2), "left": (L_, "bottom", 1), "right": (R_, "bottom", -1)},
}
NEIGHBOURS: dict[int, tuple[int, ...]] = {f: tuple(n for n, _, _ in PAD_TABLE[f].values()) for f in range(6)}


def _edge(x: torch.Tensor, side: Side, width: int) -> torch.Tensor:
    """The band of `width` pixels along one edge of faces (..., S, S)."""
    return {
        "top": lambda: x[..., :width, :],
        "bottom": lambda: x[..., -width:, :],
        "left": lambda: x[..., :, :width],
        "right": lambda: x[..., :, -width:],
    }[side]()


def _band(padded: torch.Tensor, side: Side, width: int) -> tuple[slice, slice]:
    """(rows, cols) of a side's band in a face padded by `width`."""
    n = padded.shape[-1]
    inner = slice(width, n - width)
    return {
        "top": (slice(0, width), inner),
        "bottom": (slice(n - width, n), inner),
        "left": (inner, slice(0, width)),
        "right": (inner, slice(n - width, n)),
    }[side]


def pad_faces(cube_6CSS: torch.Tensor, width: int, faces: tuple[int, ...] = tuple(range(6))) -> torch.Tensor:
    """Faces (..., 6, C, S, S) -> the chosen faces padded (..., len(faces), C, S + 2P, S + 2P) from their
    rotated neighbours; each P x P corner is the mean of the two bands' nearest rows/columns."""
    S = cube_6CSS.shape[-1]
    out = []
    for f in faces:
        face = cube_6CSS[..., f, :, :, :]
        padded = face.new_zeros(*face.shape[:-2], S + 2 * width, S + 2 * width)
        padded[..., width : width + S, width : width + S] = face
        for side, (g, edge, turns) in PAD_TABLE[f].items():
            strip = torch.rot90(_edge(cube_6CSS[..., g, :, :, :], edge, width), turns, dims=(-2, -1))
            rows, cols = _band(padded, side, width)
            padded[..., rows, cols] = strip
        w, n = width, S + 2 * width
        for rows, cols, r, c in (
            (slice(0, w), slice(0, w), w, w),
            (slice(0, w), slice(n - w, n), w, n - w - 1),
            (slice(n - w, n), slice(0, w), n - w - 1, w),
            (slice(n - w, n), slice(n - w, n), n - w - 1, n - w - 1),
        ):
            horizontal = padded[..., rows, c : c + 1]  # the top/bottom band's column next to the corner
            vertical = padded[..., r : r + 1, cols]
            padded[..., rows, cols] = 0.5 * (horizontal + vertical)
        out.append(padded)
    return torch.stack(out, dim=-4)


def blend_back(cube_6CSS: torch.Tensor, padded_CNN: torch.Tensor, face: int, width: int, into: set[int]) -> None:
    """Blend the generated padding bands of `face` (..., C, S + 2P, S + 2P) into the edge bands of the
    neighbours listed in `into`, in place: alpha = 0 (all the new band) at the seam, 1 (the neighbour) inland."""
    ramp = torch.linspace(1.0, 0.0, width, dtype=padded_CNN.dtype, device=padded_CNN.device)
    for side, (g, edge, turns) in PAD_TABLE[face].items():
        if g not in into:
            continue
        rows, cols = _band(padded_CNN, side, width)
        band = padded_CNN[..., rows, cols]
        alpha = {
            "top": ramp[:, None],
            "bottom": ramp.flip(0)[:, None],
            "left": ramp[None, :],
            "right": ramp.flip(0)[None, :],
        }
        old = torch.rot90(_edge(cube_6CSS[..., g, :, :, :], edge, width), turns, dims=(-2, -1))
        mixed = alpha[side] * old + (1 - alpha[side]) * band
        target = _edge(cube_6CSS[..., g, :, :, :], edge, width)
        target.copy_(torch.rot90(mixed, -turns, dims=(-2, -1)))


def blend_seams(cube_T6CSS: torch.Tensor, padded: dict[int, torch.Tensor], width: int) -> torch.Tensor:
    """Both predictions of every seam, cross-faded: each face's generated padding (`padded[f]`, (T, C, S + 2P,
    S + 2P), all six faces) predicts its neighbours' edge bands, so each band next to a seam has two
    predictions, the face's own and its neighbour's. Across the 2P pixels around the seam the weight of a
    face's own prediction ramps linearly from 1/2 + 1/(4P) at the seam to 1 - 1/(4P) inland; corners take
    both neighbours' corrections. Returns the blended cube (T, 6, C, S, S)."""
    own_weight = 0.5 + (torch.arange(width, dtype=cube_T6CSS.dtype, device=cube_T6CSS.device) + 0.5) / (2 * width)
    out = cube_T6CSS.clone()
    for f in range(6):
        for side, (g, edge, _) in PAD_TABLE[f].items():
            back = PAD_TABLE[g][edge][2]  # how g's padder turned f's band into g's frame
            rows, cols = _band(padded[g], edge, width)
            other = torch.rot90(padded[g][..., rows, cols], -back, dims=(-2, -1))  # g's guess of f's band
            w = {
                "top": own_weight[:, None],
                "bottom": own_weight.flip(0)[:, None],
                "left": own_weight[None, :],
                "right": own_weight.flip(0)[None, :],
            }[side]
            own = _edge(cube_T6CSS[:, f], side, width)
            _edge(out[:, f], side, width).add_((1 - w) * (other - own))
    return out


def face_coverage(mask_T6HW: torch.Tensor) -> torch.Tensor:
    """Coverage (6,) of each face: the mean of the input mask (T, 6, [1,] S, S) over pixels and frames."""
    m = mask_T6HW.reshape(mask_T6HW.shape[0], 6, -1).float()
    return m.mean(dim=(0, 2))


def plan_faces(mask_T6HW: torch.Tensor, mode: str = "coverage") -> list[int]:
    """Generation order of the faces of one window: descending coverage (ties keep F R B L U D order)."""
    if mode == "fixed":
        return list(range(6))
    cov = face_coverage(mask_T6HW).tolist()
    return sorted(range(6), key=lambda f: (-round(cov[f], 6), f))


def cross_positions(cells: int) -> torch.Tensor:
    """(6, 2, c, c) (row, col) of every token cell on the unfolded T-cross: F R B L in the middle row
    (columns 0..4c-1), U above F and D below F."""
    i = torch.arange(cells, dtype=torch.float32)
    rows, cols = torch.meshgrid(i, i, indexing="ij")
    offsets = [(1, 0), (1, 1), (1, 2), (1, 3), (0, 0), (2, 0)]
    return torch.stack([torch.stack([rows + r * cells, cols + c * cells]) for r, c in offsets])


def strip_positions(cells: int) -> torch.Tensor:
    """(6, 2, c, c) positions of the plain strip F R B L U D (the no-cube-RoPE ablation)."""
    i = torch.arange(cells, dtype=torch.float32)
    rows, cols = torch.meshgrid(i, i, indexing="ij")
    return torch.stack([torch.stack([rows, cols + f * cells]) for f in range(6)])


FACE_NAMES = CUBE_FACES
