"""3-D toy scenes: spheres and boxes resting on a checkered ground plane under a sky, objects sliding
and a camera moving and turning over time, sampled from an explicit `torch.Generator`.

World frame: x right, y up, z forward (the ground is y = 0). Time is the frame index. Objects slide on
the ground at constant velocity and reflect off the walls of a square arena |x|, |z| <= arena, so a
scene can run for any number of frames; the camera does the same inside a smaller square at a fixed
height above every object, while its yaw turns at a constant rate.
Segmentation ids: 0 sky, 1 ground, then 2, 3, ... for the spheres and then the boxes, in order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from genmotion.data.toyworld.vocab import COLOURS, Colour
from genmotion.errors import UsageError

__all__ = ["Box", "Camera3D", "Scene3D", "Sphere", "reflect", "sample_scene"]

Vec3 = tuple[float, float, float]


@dataclass(frozen=True, kw_only=True)
class Sphere:
    """centre at frame 0, radius, palette colour, velocity per frame (its y part is ignored)."""

    centre: Vec3
    radius: float
    colour: Colour
    velocity: Vec3 = (0.0, 0.0, 0.0)


@dataclass(frozen=True, kw_only=True)
class Box:
    """Axis-aligned box: centre at frame 0, half sizes, palette colour, velocity per frame."""

    centre: Vec3
    half_size: Vec3
    colour: Colour
    velocity: Vec3 = (0.0, 0.0, 0.0)


@dataclass(frozen=True, kw_only=True)
class Camera3D:
    """Pose at frame 0 (angles in radians, see projection.rotation_matrix), velocity per frame, and
    yaw_rate in radians per frame."""

    position: Vec3 = (0.0, 1.6, -4.0)
    yaw: float = 0.0
    pitch: float = -0.15
    roll: float = 0.0
    velocity: Vec3 = (0.0, 0.0, 0.0)
    yaw_rate: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Scene3D:
    """A scene; `arena` bounds the objects' x and z, `camera_arena` the camera's."""

    spheres: tuple[Sphere, ...] = ()
    boxes: tuple[Box, ...] = ()
    camera: Camera3D = Camera3D()
    sun_direction: Vec3 = (0.4, 0.8, -0.45)
    arena: float = 6.0
    camera_arena: float = 4.5

    def __post_init__(self) -> None:
        if self.arena <= 0 or self.camera_arena <= 0:
            raise UsageError("arena and camera_arena must be positive", fix="use e.g. arena=6, camera_arena=4.5")
        top = max(
            [s.centre[1] + s.radius for s in self.spheres] + [b.centre[1] + b.half_size[1] for b in self.boxes] + [0]
        )
        if self.camera.position[1] <= top:
            raise UsageError(
                f"the camera (height {self.camera.position[1]}) is not above every object (top {top:.2f})",
                why="the moving camera must never enter an object",
                fix="raise the camera or lower the objects",
            )

    @property
    def segment_names(self) -> tuple[str, ...]:
        """Name of each segmentation id: sky, ground, sphere 0 ..., box 0 ..."""
        spheres = tuple(f"{s.colour} sphere {i}" for i, s in enumerate(self.spheres))
        return ("sky", "ground", *spheres, *(f"{b.colour} box {i}" for i, b in enumerate(self.boxes)))

    def object_centres(self, time: float) -> torch.Tensor:
        """Centres (N, 3) of the spheres then the boxes at `time` (frames)."""
        rows = []
        for centre, velocity, reach in [(s.centre, s.velocity, s.radius) for s in self.spheres] + [
            (b.centre, b.velocity, max(b.half_size[0], b.half_size[2])) for b in self.boxes
        ]:
            limit = self.arena - reach
            x = reflect(centre[0] + velocity[0] * time, -limit, limit)
            z = reflect(centre[2] + velocity[2] * time, -limit, limit)
            rows.append((x, centre[1], z))
        return torch.tensor(rows, dtype=torch.float32).reshape(-1, 3)

    def camera_pose(self, time: float) -> tuple[torch.Tensor, tuple[float, float, float]]:
        """Camera position (3,) and (yaw, pitch, roll) at `time` (frames)."""
        cam, limit = self.camera, self.camera_arena
        x = reflect(cam.position[0] + cam.velocity[0] * time, -limit, limit)
        z = reflect(cam.position[2] + cam.velocity[2] * time, -limit, limit)
        return torch.tensor([x, cam.position[1], z]), (cam.yaw + cam.yaw_rate * time, cam.pitch, cam.roll)


def reflect(value: float, low: float, high: float) -> float:
    """Fold `value` into [low, high] as a point bouncing between two walls would be (a triangle wave)."""
    span = high - low
    if span <= 0:
        return (low + high) / 2
    u = (value - low) % (2 * span)
    return low + (span - abs(u - span))


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def sample_scene(
    generator: torch.Generator,
    *,
    num_spheres: int | None = None,
    num_boxes: int | None = None,
    moving_objects: bool = True,
    moving_camera: bool = True,
) -> Scene3D:
    """A random scene: 1-3 spheres and 1-3 boxes (distinct palette colours) on the ground around the
    origin, objects sliding at up to 0.05 units per frame, the camera circling slowly and turning."""
    counts = torch.randint(1, 4, (2,), generator=generator).tolist()
    spheres_n = counts[0] if num_spheres is None else num_spheres
    boxes_n = counts[1] if num_boxes is None else num_boxes
    if spheres_n < 0 or boxes_n < 0 or spheres_n + boxes_n > len(COLOURS):
        raise UsageError(f"cannot place {spheres_n} spheres and {boxes_n} boxes", fix="use 0-8 objects in all")
    colours = [COLOURS[i] for i in torch.randperm(len(COLOURS), generator=generator).tolist()]
    speed = 0.05 if moving_objects else 0.0

    def place() -> tuple[float, float, float, float]:  # x, z, vx, vz
        angle, radius = _uniform(generator, 0, 2 * math.pi), _uniform(generator, 1.0, 4.5)
        heading = _uniform(generator, 0, 2 * math.pi)
        pace = speed * _uniform(generator, 0.3, 1.0)
        return radius * math.sin(angle), radius * math.cos(angle), pace * math.cos(heading), pace * math.sin(heading)

    spheres, boxes = [], []
    for i in range(spheres_n):
        x, z, vx, vz = place()
        r = _uniform(generator, 0.3, 0.6)
        spheres.append(Sphere(centre=(x, r, z), radius=r, colour=colours[i], velocity=(vx, 0.0, vz)))
    for i in range(boxes_n):
        x, z, vx, vz = place()
        half = (_uniform(generator, 0.25, 0.6), _uniform(generator, 0.25, 0.6), _uniform(generator, 0.25, 0.6))
        boxes.append(Box(centre=(x, half[1], z), half_size=half, colour=colours[spheres_n + i], velocity=(vx, 0.0, vz)))
    camera = Camera3D(
        position=(_uniform(generator, -1.0, 1.0), 1.6, _uniform(generator, -1.0, 1.0)),
        yaw=_uniform(generator, -math.pi, math.pi),
        pitch=_uniform(generator, -0.25, 0.0),
        velocity=(_uniform(generator, -0.03, 0.03), 0.0, _uniform(generator, -0.03, 0.03))
        if moving_camera
        else (0.0, 0.0, 0.0),
        yaw_rate=_uniform(generator, -0.02, 0.02) if moving_camera else 0.0,
    )
    return Scene3D(spheres=tuple(spheres), boxes=tuple(boxes), camera=camera)
