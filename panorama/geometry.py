"""Cube-map geometry in batched torch: equirect <-> cube (tensor, dict, dice) <-> perspective, with coverage masks.

Convention: x right, y up, z forward; faces F R B L U D (F = +z, R = +x, B = -z, L = -x, U = +y, D = -y)
seen from inside the cube, each upright as in the dice cross (U above F, the row L F R B, D below F);
F sits at the centre column of the equirect image. Pixels sample their centres. Axes: B batch, C
channels, S face size, H/W image height/width, N directions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from genmotion.data.toyworld.raycast import (
    CUBE_FACES,
    cube_face_directions,
    directions_to_cube,
    directions_to_equirect,
    equirect_directions,
    perspective_directions,
    rotation_matrix,
)
from genmotion.errors import UsageError

__all__ = [
    "CUBE_FACES",
    "DICE_CELLS",
    "cube_face_directions",
    "cube_from_dice",
    "cube_from_dict",
    "cube_to_dice",
    "cube_to_dict",
    "cube_to_equirect",
    "cube_to_perspective",
    "equirect_directions",
    "equirect_to_cube",
    "equirect_to_perspective",
    "pad_faces_1px",
    "perspective_directions",
    "perspective_to_cube",
    "perspective_to_equirect",
    "rotation_matrix",
    "rotations",
    "sample_cube",
    "sample_equirect",
    "sample_perspective",
]

# (row, col) cell of each face in the 3 x 4 dice cross
DICE_CELLS: tuple[tuple[int, int], ...] = ((1, 1), (1, 2), (1, 3), (1, 0), (0, 1), (2, 1))


def _grid(row: torch.Tensor, col: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel (row, col) (B, N) -> grid_sample coordinates (B, 1, N, 2) for align_corners=False."""
    x = (col + 0.5) / width * 2 - 1
    y = (row + 0.5) / height * 2 - 1
    return torch.stack([x, y], dim=-1)[:, None]


def _batched(dirs: torch.Tensor, batch: int) -> torch.Tensor:
    """Directions (N, 3) or (B, N, 3) -> (B, N, 3)."""
    return dirs.expand(batch, *dirs.shape) if dirs.dim() == 2 else dirs


def sample_equirect(e_BCHW: torch.Tensor, dirs: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Equirect values (B, C, N) in directions (N, 3) or (B, N, 3); longitude wraps around."""
    B, _, H, W = e_BCHW.shape
    d = _batched(dirs.to(e_BCHW.dtype), B)
    row, col = directions_to_equirect(d, H, W)
    wrapped = torch.cat([e_BCHW[..., -1:], e_BCHW, e_BCHW[..., :1]], dim=-1)  # one column each side
    grid = _grid(row, col + 1, H, W + 2)
    return F.grid_sample(wrapped, grid, mode=mode, padding_mode="border", align_corners=False)[:, :, 0]


def pad_faces_1px(c_B6CSS: torch.Tensor) -> torch.Tensor:
    """(B, 6, C, S, S) -> (B, 6, C, S + 2, S + 2): each face grown by one pixel sampled from its neighbours."""
    B, _, C, S, _ = c_B6CSS.shape
    a = (torch.arange(-1, S + 1, dtype=c_B6CSS.dtype, device=c_B6CSS.device) + 0.5) * 2 / S - 1
    forward, right, up = _bases(c_B6CSS)
    d = (
        forward[:, None, None]
        + a[None, None, :, None] * right[:, None, None]
        - a[None, :, None, None] * up[:, None, None]
    )
    faces = _sample_cube_flat(c_B6CSS, d.reshape(-1, 3), inner=True)  # (B, C, 6 (S+2)^2)
    out = faces.reshape(B, C, 6, S + 2, S + 2).permute(0, 2, 1, 3, 4).clone()
    out[:, :, :, 1:-1, 1:-1] = c_B6CSS
    return out


def _bases(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    f = cube_face_directions(1).reshape(6, 3)  # face centres
    forward = f.sign() * (f.abs() > 0.5)
    right = torch.tensor([[1, 0, 0], [0, 0, -1], [-1, 0, 0], [0, 0, 1], [1, 0, 0], [1, 0, 0]], dtype=torch.float32)
    up = torch.linalg.cross(forward, right)
    return forward.to(like), right.to(like), up.to(like)


def _sample_cube_flat(
    c_B6CSS: torch.Tensor, dirs: torch.Tensor, mode: str = "bilinear", inner: bool = False
) -> torch.Tensor:
    """Sample a cube in directions (N, 3) or (B, N, 3) -> (B, C, N); `inner` samples the faces unpadded."""
    B, _, C, S, _ = c_B6CSS.shape
    d = _batched(dirs.to(c_B6CSS.dtype), B)
    face, row, col = directions_to_cube(d.float().cpu(), S)  # the face bases live on the CPU in float32
    face, row, col = face.to(d.device), row.to(d), col.to(d)
    if inner:
        tall = c_B6CSS.permute(0, 2, 1, 3, 4).reshape(B, C, 6 * S, S)
        row = row.clamp(-0.5, S - 0.5) + face * S
        grid = _grid(row, col.clamp(-0.5, S - 0.5), 6 * S, S)
    else:
        padded = pad_faces_1px(c_B6CSS)
        tall = padded.permute(0, 2, 1, 3, 4).reshape(B, C, 6 * (S + 2), S + 2)
        grid = _grid(row + 1 + face * (S + 2), col + 1, 6 * (S + 2), S + 2)
    return F.grid_sample(tall, grid, mode=mode, padding_mode="border", align_corners=False)[:, :, 0]


def sample_cube(c_B6CSS: torch.Tensor, dirs: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Cube values (B, C, N) in directions (N, 3) or (B, N, 3); bilinear reads across face edges."""
    return _sample_cube_flat(c_B6CSS, dirs, mode)


def sample_perspective(
    p_BCHW: torch.Tensor, dirs_cam: torch.Tensor, fov_deg: torch.Tensor | float, mode: str = "bilinear"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Perspective values (B, C, N) and coverage (B, N) (1 inside the image) at camera-frame directions
    (B, N, 3); `fov_deg` is the horizontal field of view, a float or (B,)."""
    B, _, H, W = p_BCHW.shape
    d = dirs_cam.to(p_BCHW.dtype)
    fov = torch.as_tensor(fov_deg, dtype=d.dtype, device=d.device).reshape(-1, 1).expand(B, 1)
    tan_x = torch.tan(torch.deg2rad(fov) / 2)
    tan_y = tan_x * H / W
    z = d[..., 2]
    safe = torch.where(z > 1e-6, z, torch.ones_like(z))
    a, b = d[..., 0] / safe / tan_x, d[..., 1] / safe / tan_y
    inside = (z > 1e-6) & (a.abs() <= 1) & (b.abs() <= 1)
    row, col = (1 - b) / 2 * H - 0.5, (a + 1) / 2 * W - 0.5
    grid = _grid(row, col, H, W).clamp(-2, 2)
    values = F.grid_sample(p_BCHW, grid, mode=mode, padding_mode="border", align_corners=False)[:, :, 0]
    return values * inside[:, None], inside.to(p_BCHW.dtype)


def rotations(yaw_deg: torch.Tensor, pitch_deg: torch.Tensor, roll_deg: torch.Tensor) -> torch.Tensor:
    """Camera-to-world rotations (T, 3, 3) from angles in degrees (T,): R = Ry(yaw) Rx(pitch) Rz(roll)."""
    rows = [
        rotation_matrix(math.radians(float(y)), math.radians(float(p)), math.radians(float(r)))
        for y, p, r in zip(yaw_deg.tolist(), pitch_deg.tolist(), roll_deg.tolist(), strict=True)
    ]
    return torch.stack(rows) if rows else torch.zeros(0, 3, 3)


# -- whole-image conversions ---------------------------------------------------------------------------
def equirect_to_cube(e_BCHW: torch.Tensor, face_size: int, mode: str = "bilinear") -> torch.Tensor:
    """(B, C, H, W) -> (B, 6, C, S, S) in the order F R B L U D."""
    B, C = e_BCHW.shape[:2]
    dirs = cube_face_directions(face_size).reshape(-1, 3).to(e_BCHW.device)
    v = sample_equirect(e_BCHW, dirs, mode)
    return v.reshape(B, C, 6, face_size, face_size).transpose(1, 2)


def cube_to_equirect(c_B6CSS: torch.Tensor, height: int, width: int, mode: str = "bilinear") -> torch.Tensor:
    """(B, 6, C, S, S) -> (B, C, H, W)."""
    B, _, C = c_B6CSS.shape[:3]
    dirs = equirect_directions(height, width).reshape(-1, 3).to(c_B6CSS.device)
    return sample_cube(c_B6CSS, dirs, mode).reshape(B, C, height, width)


def _to_camera(dirs: torch.Tensor, rotation_B33: torch.Tensor) -> torch.Tensor:
    """World directions (N, 3) -> camera-frame directions (B, N, 3) for camera-to-world rotations."""
    return dirs.to(rotation_B33)[None] @ rotation_B33  # d_cam = R^T d, as rows


def perspective_to_cube(
    p_BCHW: torch.Tensor, fov_deg: torch.Tensor | float, rotation_B33: torch.Tensor, face_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project perspective frames onto the cube: values (B, 6, C, S, S) (zero outside) and coverage
    (B, 6, 1, S, S). `rotation_B33` turns camera directions into cube directions."""
    B, C = p_BCHW.shape[:2]
    dirs = cube_face_directions(face_size).reshape(-1, 3)
    v, m = sample_perspective(p_BCHW, _to_camera(dirs, rotation_B33), fov_deg)
    S = face_size
    return v.reshape(B, C, 6, S, S).transpose(1, 2), m.reshape(B, 6, 1, S, S)


def perspective_to_equirect(
    p_BCHW: torch.Tensor, fov_deg: torch.Tensor | float, rotation_B33: torch.Tensor, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project perspective frames onto an equirect canvas: values (B, C, H, W) and coverage (B, 1, H, W)."""
    B, C = p_BCHW.shape[:2]
    dirs = equirect_directions(height, width).reshape(-1, 3)
    v, m = sample_perspective(p_BCHW, _to_camera(dirs, rotation_B33), fov_deg)
    return v.reshape(B, C, height, width), m.reshape(B, 1, height, width)


def _view_dirs(rotation_B33: torch.Tensor, fov_deg: float, height: int, width: int) -> torch.Tensor:
    d = perspective_directions(height, width, fov_deg).reshape(-1, 3).to(rotation_B33)
    return d[None] @ rotation_B33.transpose(1, 2)  # d_world = R d_cam, as rows


def cube_to_perspective(
    c_B6CSS: torch.Tensor, fov_deg: float, rotation_B33: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """A pinhole view (B, C, H, W) of the cube (horizontal field of view `fov_deg`)."""
    B, C = c_B6CSS.shape[0], c_B6CSS.shape[2]
    return sample_cube(c_B6CSS, _view_dirs(rotation_B33, fov_deg, height, width)).reshape(B, C, height, width)


def equirect_to_perspective(
    e_BCHW: torch.Tensor, fov_deg: float, rotation_B33: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """A pinhole view (B, C, H, W) of the equirect image (horizontal field of view `fov_deg`)."""
    B, C = e_BCHW.shape[:2]
    return sample_equirect(e_BCHW, _view_dirs(rotation_B33, fov_deg, height, width)).reshape(B, C, height, width)


# -- layouts -------------------------------------------------------------------------------------------
def cube_to_dict(c_B6CSS: torch.Tensor) -> dict[str, torch.Tensor]:
    """{'F': (B, C, S, S), ...}."""
    return {name: c_B6CSS[:, i] for i, name in enumerate(CUBE_FACES)}


def cube_from_dict(faces: dict[str, torch.Tensor]) -> torch.Tensor:
    missing = [f for f in CUBE_FACES if f not in faces]
    if missing:
        raise UsageError(f"cube dict lacks faces {missing}", fix=f"give all of {list(CUBE_FACES)}")
    return torch.stack([faces[f] for f in CUBE_FACES], dim=1)


def cube_to_dice(c_B6CSS: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """(B, 6, C, S, S) -> the 3 x 4 cross (B, C, 3S, 4S): U above F, L F R B in the middle row, D below F."""
    B, _, C, S, _ = c_B6CSS.shape
    out = c_B6CSS.new_full((B, C, 3 * S, 4 * S), fill)
    for i, (r, c) in enumerate(DICE_CELLS):
        out[:, :, r * S : (r + 1) * S, c * S : (c + 1) * S] = c_B6CSS[:, i]
    return out


def cube_from_dice(dice_BCHW: torch.Tensor) -> torch.Tensor:
    """The 3 x 4 cross (B, C, 3S, 4S) -> (B, 6, C, S, S)."""
    S = dice_BCHW.shape[-2] // 3
    if dice_BCHW.shape[-2] != 3 * S or dice_BCHW.shape[-1] != 4 * S:
        raise UsageError(f"a dice cross is 3S x 4S, got {tuple(dice_BCHW.shape[-2:])}")
    return torch.stack([dice_BCHW[:, :, r * S : (r + 1) * S, c * S : (c + 1) * S] for r, c in DICE_CELLS], dim=1)
