"""Vectorised ray casting of 3-D toy scenes into perspective views, equirectangular panoramas and the
six cube faces, each with per-pixel depth, normals and segmentation.

All views of one frame share the camera pose of that frame (see scene3d.py); a view only chooses ray
directions in the camera frame, so one direction gives the same colour, depth, normal and id in every
view. Depth is the distance along the ray (not z), FAR for the sky. Shading: Lambert with a sun, hard
shadows cast by the objects, ambient light, a checkered ground, a vertical sky gradient.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from genmotion.data.toyworld.scene3d import Scene3D
from genmotion.data.toyworld.vocab import PALETTE
from genmotion.errors import UsageError

__all__ = [
    "CUBE_FACES",
    "FAR",
    "View",
    "cube_face_directions",
    "directions_to_cube",
    "directions_to_equirect",
    "equirect_directions",
    "perspective_directions",
    "render_cube_faces",
    "render_equirect",
    "render_perspective",
    "render_rays",
    "rotation_matrix",
]

# -- ray directions of the views -----------------------------------------------------------------------
# Convention (shared with genmotion.panorama): camera frame x right, y up, z forward. Cube
# faces F R B L U D are seen from inside the cube: F = +z, R = +x, B = -z, L = -x, U = +y, D = -y; in the
# unfolded cross U sits above F (U's bottom edge meets F's top edge) and D below F. On the equirectangular
# image longitude 0 (+z, F) is the centre column, +90 deg (+x, R) is right of it, and the top row looks
# up. Pixel (row, col) samples its centre: a = 2 (col + 0.5) / W - 1, b = 1 - 2 (row + 0.5) / H.

CUBE_FACES: tuple[str, ...] = ("F", "R", "B", "L", "U", "D")
# (forward, right, up) of each face, in the order of CUBE_FACES
_FACE_BASES = (
    [[0, 0, 1], [1, 0, 0], [0, 1, 0]],
    [[1, 0, 0], [0, 0, -1], [0, 1, 0]],
    [[0, 0, -1], [-1, 0, 0], [0, 1, 0]],
    [[-1, 0, 0], [0, 0, 1], [0, 1, 0]],
    [[0, 1, 0], [1, 0, 0], [0, 0, -1]],
    [[0, -1, 0], [1, 0, 0], [0, 0, 1]],
)


def _face_bases() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """forward, right, up: each (6, 3)."""
    bases = torch.tensor(_FACE_BASES, dtype=torch.float32)
    return bases[:, 0], bases[:, 1], bases[:, 2]


def rotation_matrix(yaw: float, pitch: float, roll: float = 0.0) -> torch.Tensor:
    """Camera-to-world rotation (3, 3) for angles in radians: R = Ry(yaw) Rx(pitch) Rz(roll).

    yaw > 0 turns towards +x (right), pitch > 0 looks up, roll > 0 tilts the image clockwise.
    """
    cy, sy, cp, sp, cr, sr = (f(a) for a in (yaw, pitch, roll) for f in (math.cos, math.sin))
    ry = torch.tensor([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rx = torch.tensor([[1.0, 0.0, 0.0], [0.0, cp, sp], [0.0, -sp, cp]])
    rz = torch.tensor([[cr, sr, 0.0], [-sr, cr, 0.0], [0.0, 0.0, 1.0]])
    return ry @ rx @ rz


def _pixel_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """a (1, W) in (-1, 1) left to right, b (H, 1) in (-1, 1) bottom to top, at pixel centres."""
    a = (2 * (torch.arange(width, dtype=torch.float32) + 0.5) / width - 1)[None, :]
    b = (1 - 2 * (torch.arange(height, dtype=torch.float32) + 0.5) / height)[:, None]
    return a, b


def _check_size(**sizes: int) -> None:
    for name, value in sizes.items():
        if value < 1:
            raise UsageError(f"{name} must be >= 1, got {value}", fix=f"pass a positive {name}")


def perspective_directions(height: int, width: int, fov_deg: float) -> torch.Tensor:
    """Unit ray directions (H, W, 3) of a pinhole camera; fov_deg is the horizontal field of view."""
    _check_size(height=height, width=width)
    if not 0.0 < fov_deg < 180.0:
        raise UsageError(f"fov_deg must be in (0, 180), got {fov_deg}", fix="use e.g. 60 or 90")
    a, b = _pixel_grid(height, width)
    tan_x = math.tan(math.radians(fov_deg) / 2)
    tan_y = tan_x * height / width
    d = torch.stack(torch.broadcast_tensors(a * tan_x, b * tan_y, torch.ones(1, 1)), dim=-1)
    return d / d.norm(dim=-1, keepdim=True)


def equirect_directions(height: int, width: int) -> torch.Tensor:
    """Unit ray directions (H, W, 3) of an equirectangular panorama (longitude across, latitude down)."""
    _check_size(height=height, width=width)
    a, b = _pixel_grid(height, width)
    lon, lat = a * math.pi, b * (math.pi / 2)
    x, y, z = torch.cos(lat) * torch.sin(lon), torch.sin(lat).expand(height, width), torch.cos(lat) * torch.cos(lon)
    return torch.stack([x, y, z], dim=-1)


def cube_face_directions(face_size: int) -> torch.Tensor:
    """Unit ray directions (6, S, S, 3) of the cube faces F R B L U D."""
    _check_size(face_size=face_size)
    a, b = _pixel_grid(face_size, face_size)
    forward, right, up = _face_bases()
    d = forward[:, None, None] + a[None, ..., None] * right[:, None, None] + b[None, ..., None] * up[:, None, None]
    return d / d.norm(dim=-1, keepdim=True)


def directions_to_equirect(directions: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Continuous (row, col) on an equirect image of H x W for directions (..., 3); pixel centres are integers."""
    d = directions / directions.norm(dim=-1, keepdim=True)
    lon = torch.atan2(d[..., 0], d[..., 2])
    lat = torch.asin(d[..., 1].clamp(-1.0, 1.0))
    col = (lon / math.pi + 1) / 2 * width - 0.5
    row = (1 - lat / (math.pi / 2)) / 2 * height - 0.5
    return row, col


def directions_to_cube(directions: torch.Tensor, face_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(face index into CUBE_FACES, row, col) for directions (..., 3); pixel centres are integers."""
    forward, right, up = _face_bases()
    face = (directions @ forward.T).argmax(dim=-1)  # the face whose axis is most aligned
    depth = (directions * forward[face]).sum(-1)
    a = (directions * right[face]).sum(-1) / depth
    b = (directions * up[face]).sum(-1) / depth
    return face, (1 - b) / 2 * face_size - 0.5, (a + 1) / 2 * face_size - 0.5


# -- casting rays --------------------------------------------------------------------------------------

FAR = 100.0  # depth of the sky, and how far the ground is drawn
_EPS = 1e-4
_AMBIENT = 0.35
_GROUND = ((118, 116, 108), (168, 166, 156))
_SKY_HORIZON, _SKY_ZENITH = (208, 222, 236), (92, 140, 212)


class View(NamedTuple):
    """rgb uint8 (..., H, W, 3); depth float32 (..., H, W) distance along the ray; normals float32
    (..., H, W, 3) unit, world frame, zero on the sky; segmentation int64 (..., H, W) (ids: Scene3D)."""

    rgb: torch.Tensor
    depth: torch.Tensor
    normals: torch.Tensor
    segmentation: torch.Tensor


class _Objects(NamedTuple):
    centres: torch.Tensor  # (N, 3) spheres then boxes
    radii: torch.Tensor  # (S,)
    halves: torch.Tensor  # (N - S, 3)
    colours: torch.Tensor  # (N, 3) in [0, 1]


def _objects(scene: Scene3D, time: float) -> _Objects:
    colours = [PALETTE[s.colour] for s in scene.spheres] + [PALETTE[b.colour] for b in scene.boxes]
    return _Objects(
        centres=scene.object_centres(time),
        radii=torch.tensor([s.radius for s in scene.spheres], dtype=torch.float32),
        halves=torch.tensor([b.half_size for b in scene.boxes], dtype=torch.float32).reshape(-1, 3),
        colours=torch.tensor(colours, dtype=torch.float32).reshape(-1, 3) / 255,
    )


def _hit_objects(objects: _Objects, origins: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest object hit per ray: distance (R,) (inf if none) and object index (R,). origins (R, 3) or (1, 3)."""
    s = len(objects.radii)
    candidates = [torch.full((dirs.shape[0], 1), math.inf)]
    if s:
        oc = origins[:, None, :] - objects.centres[None, :s]  # (R, S, 3)
        b = (oc * dirs[:, None, :]).sum(-1)
        c = (oc * oc).sum(-1) - objects.radii.square()
        disc = b * b - c
        root = torch.sqrt(disc.clamp(min=0))
        near, far = -b - root, -b + root
        t = torch.where(near > _EPS, near, torch.where(far > _EPS, far, math.inf))
        candidates.append(torch.where(disc >= 0, t, math.inf))
    if len(objects.halves):
        safe = torch.where(dirs.abs() < 1e-9, torch.full_like(dirs, 1e-9), dirs)[:, None, :]  # (R, 1, 3)
        lo = (objects.centres[None, s:] - objects.halves - origins[:, None, :]) / safe
        hi = (objects.centres[None, s:] + objects.halves - origins[:, None, :]) / safe
        enter = torch.minimum(lo, hi).amax(-1)  # (R, B)
        leave = torch.maximum(lo, hi).amin(-1)
        t = torch.where(enter > _EPS, enter, leave)
        candidates.append(torch.where((leave >= enter) & (leave > _EPS), t, math.inf))
    distance, index = torch.cat(candidates, dim=1).min(dim=1)
    return distance, index - 1  # -1: no object


def _object_normals(objects: _Objects, points: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Outward unit normals (R, 3) at surface points of objects `index` (R,), all >= 0."""
    s = len(objects.radii)
    local = points - objects.centres[index]
    normals = local / local.norm(dim=-1, keepdim=True).clamp(min=1e-9)  # right for spheres
    is_box = index >= s
    if bool(is_box.any()):
        q = local[is_box] / objects.halves[index[is_box] - s]  # box face where |q| is largest
        axis = q.abs().argmax(-1, keepdim=True)
        face = torch.zeros_like(q).scatter_(-1, axis, q.gather(-1, axis).sign())
        normals[is_box] = face
    return normals


def _cast(scene: Scene3D, origin: torch.Tensor, dirs: torch.Tensor, time: float) -> View:
    """Render rays (R, 3) from one origin (3,): flat View fields (R, ...)."""
    objects = _objects(scene, time)
    sun = torch.tensor(scene.sun_direction, dtype=torch.float32)
    sun = sun / sun.norm()
    t_obj, index = _hit_objects(objects, origin[None], dirs)
    t_ground = torch.where(dirs[:, 1] < -1e-6, -origin[1] / dirs[:, 1].clamp(max=-1e-6), math.inf)
    t_ground = torch.where(t_ground < FAR, t_ground, math.inf)
    on_object = t_obj < t_ground
    depth = torch.minimum(t_obj, t_ground)
    hit = torch.isfinite(depth)
    points = origin + dirs * torch.where(hit, depth, 0.0)[:, None]

    seg = torch.where(on_object, index + 2, torch.where(hit, 1, 0))
    normals = torch.zeros_like(dirs)
    normals[hit & ~on_object] = torch.tensor([0.0, 1.0, 0.0])
    if bool(on_object.any()):
        normals[on_object] = _object_normals(objects, points[on_object], index[on_object])
    ground = torch.tensor(_GROUND, dtype=torch.float32) / 255
    tile = (torch.floor(points[:, 0]) + torch.floor(points[:, 2])).remainder(2).long()
    object_colour = objects.colours[index.clamp(min=0)] if len(objects.colours) else torch.zeros_like(dirs)
    albedo = torch.where(on_object[:, None], object_colour, ground[tile])
    lit = (normals @ sun).clamp(min=0)
    shadow_t, _ = _hit_objects(objects, points + normals * 1e-3, sun.expand_as(points))
    lit = torch.where(torch.isfinite(shadow_t), 0.0, lit)
    colour = albedo * (_AMBIENT + (1 - _AMBIENT) * lit[:, None])

    horizon, zenith = (torch.tensor(c, dtype=torch.float32) / 255 for c in (_SKY_HORIZON, _SKY_ZENITH))
    sky = horizon + dirs[:, 1].clamp(min=0).sqrt()[:, None] * (zenith - horizon)
    colour = torch.where(hit[:, None], colour, sky)
    rgb = (colour * 255).round().clamp(0, 255).to(torch.uint8)
    return View(rgb, torch.where(hit, depth, FAR), normals, seg)


def _times(times: float | Sequence[float]) -> list[float]:
    return [float(times)] if isinstance(times, int | float) else [float(t) for t in times]


def render_rays(
    scene: Scene3D, directions: torch.Tensor, times: float | Sequence[float], rotation: torch.Tensor | None = None
) -> View:
    """Render camera-frame ray directions (..., 3) at each time: View fields (T, ..., [3]).

    rotation (3, 3) turns the rays inside the camera (applied before the camera's own pose).
    """
    shape = directions.shape[:-1]
    d_cam = directions.reshape(-1, 3)
    if rotation is not None:
        d_cam = d_cam @ rotation.T
    frames = []
    for t in _times(times):
        origin, (yaw, pitch, roll) = scene.camera_pose(t)
        d_world = d_cam @ rotation_matrix(yaw, pitch, roll).T
        d_world = d_world / d_world.norm(dim=-1, keepdim=True)
        frames.append(_cast(scene, origin, d_world, t))
    fields = []
    for name in View._fields:
        stacked = torch.stack([getattr(f, name) for f in frames])  # (T, R, [3])
        fields.append(stacked.reshape(len(frames), *shape, *stacked.shape[2:]))
    return View(*fields)


def render_perspective(
    scene: Scene3D,
    times: float | Sequence[float],
    height: int,
    width: int,
    *,
    fov_deg: float = 60.0,
    yaw: float = 0.0,
    pitch: float = 0.0,
    roll: float = 0.0,
) -> View:
    """Pinhole views (T, H, W, ...) with horizontal field of view `fov_deg`, turned by (yaw, pitch,
    roll) radians relative to the scene camera. fov 90, square, no turn = cube face F."""
    rotation = rotation_matrix(yaw, pitch, roll) if (yaw, pitch, roll) != (0.0, 0.0, 0.0) else None
    return render_rays(scene, perspective_directions(height, width, fov_deg), times, rotation)


def render_equirect(scene: Scene3D, times: float | Sequence[float], height: int, width: int) -> View:
    """Equirectangular panoramas (T, H, W, ...) around the scene camera (F = +z at the centre); W = 2H is usual."""
    return render_rays(scene, equirect_directions(height, width), times)


def render_cube_faces(scene: Scene3D, times: float | Sequence[float], face_size: int) -> View:
    """The six cube faces F R B L U D (T, 6, S, S, ...) around the scene camera."""
    return render_rays(scene, cube_face_directions(face_size), times)
