"""3-D toy scenes: the perspective, equirectangular and cube views agree, and renders are deterministic."""

from __future__ import annotations

import math

import pytest
import torch

from genmotion.data.toyworld import (
    CUBE_FACES,
    FAR,
    Box,
    Camera3D,
    Scene3D,
    Sphere,
    cube_face_directions,
    directions_to_cube,
    directions_to_equirect,
    equirect_directions,
    render_cube_faces,
    render_equirect,
    render_perspective,
    sample_scene,
)
from genmotion.errors import UsageError


def _scene(seed: int = 0) -> Scene3D:
    return sample_scene(torch.Generator().manual_seed(seed))


def test_same_seed_same_scene_and_pixels():
    a, b = _scene(1), _scene(1)
    assert a == b and a != _scene(2)
    va, vb = render_equirect(a, [0, 5], 16, 32), render_equirect(b, [0, 5], 16, 32)
    assert all(torch.equal(x, y) for x, y in zip(va, vb, strict=True))
    assert not torch.equal(va.rgb[0], va.rgb[1])  # objects and camera move


def test_view_shapes_and_dtypes():
    scene = _scene()
    view = render_cube_faces(scene, [0, 1, 2], 8)
    assert view.rgb.shape == (3, 6, 8, 8, 3) and view.rgb.dtype == torch.uint8
    assert view.depth.shape == (3, 6, 8, 8) and view.depth.dtype == torch.float32
    assert view.normals.shape == (3, 6, 8, 8, 3) and view.segmentation.dtype == torch.int64
    persp = render_perspective(scene, 0.0, 12, 20, fov_deg=70)
    assert persp.rgb.shape == (1, 12, 20, 3)
    assert int(view.segmentation.max()) < len(scene.segment_names)


@pytest.mark.parametrize(
    ("face", "yaw", "pitch"),
    [("F", 0.0, 0.0), ("R", 90.0, 0.0), ("B", 180.0, 0.0), ("L", -90.0, 0.0), ("U", 0.0, 90.0), ("D", 0.0, -90.0)],
)
def test_perspective_at_fov_90_is_the_cube_face(face, yaw, pitch):
    scene = _scene(3)
    cube = render_cube_faces(scene, [0, 7], 24)
    view = render_perspective(scene, [0, 7], 24, 24, fov_deg=90.0, yaw=math.radians(yaw), pitch=math.radians(pitch))
    i = CUBE_FACES.index(face)
    assert torch.equal(view.segmentation, cube.segmentation[:, i])
    assert (view.rgb.int() - cube.rgb[:, i].int()).abs().max() <= 1  # same rays up to float rounding
    assert torch.allclose(view.depth, cube.depth[:, i], atol=1e-3)
    assert torch.allclose(view.normals, cube.normals[:, i], atol=1e-4)


def test_equirect_and_cube_agree_on_every_direction():
    """Each cube pixel looks up the equirect pixel nearest to its direction: same object, same depth."""
    scene = _scene(4)
    cube = render_cube_faces(scene, 3, 48)
    pano = render_equirect(scene, 3, 192, 384)
    row, col = directions_to_equirect(cube_face_directions(48), 192, 384)
    row = row.round().long().clamp(0, 191)
    col = col.round().long().remainder(384)
    seg_pano = pano.segmentation[0][row, col]
    same = seg_pano == cube.segmentation[0]
    assert same.float().mean() > 0.97
    depth_cube, depth_pano = cube.depth[0][same], pano.depth[0][row, col][same]
    near = depth_cube < FAR
    relative = (depth_cube[near] - depth_pano[near]).abs() / depth_cube[near]
    assert relative.median() < 0.01
    colour = (cube.rgb[0].float() - pano.rgb[0][row, col].float()).abs().amax(-1)[same]
    assert colour.median() <= 3


def test_direction_maps_invert_the_views():
    faces = cube_face_directions(16)
    face, row, col = directions_to_cube(faces, 16)
    grid = torch.arange(16, dtype=torch.float32)
    assert torch.equal(face, torch.arange(6)[:, None, None].expand(6, 16, 16))
    assert torch.allclose(row, grid[None, :, None].expand(6, 16, 16), atol=1e-4)
    assert torch.allclose(col, grid[None, None, :].expand(6, 16, 16), atol=1e-4)
    row, col = directions_to_equirect(equirect_directions(8, 16), 8, 16)
    assert torch.allclose(row, torch.arange(8.0)[:, None].expand(8, 16), atol=1e-4)
    assert torch.allclose(col, torch.arange(16.0)[None, :].expand(8, 16), atol=1e-4)
    # the equirect centre looks along +z (face F); a quarter turn right is +x (face R)
    centre = equirect_directions(2, 4)[0:2, 1:3].mean((0, 1))
    assert torch.allclose(centre / centre.norm(), torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)


def test_depth_normals_and_ids_of_a_known_scene():
    scene = Scene3D(
        spheres=(Sphere(centre=(0.0, 0.5, 3.0), radius=0.5, colour="red"),),
        boxes=(Box(centre=(0.0, 0.5, -3.0), half_size=(0.5, 0.5, 0.5), colour="blue"),),
        camera=Camera3D(position=(0.0, 1.6, 0.0), pitch=0.0),
    )
    cube = render_cube_faces(scene, 0, 33)
    mid = 16  # the centre pixel of each face looks straight along its axis
    f, b, d, u = (CUBE_FACES.index(n) for n in "FBDU")
    assert cube.segmentation[0, d, mid, mid] == 1 and cube.depth[0, d, mid, mid] == pytest.approx(1.6, abs=1e-4)
    assert torch.allclose(cube.normals[0, d, mid, mid], torch.tensor([0.0, 1.0, 0.0]))
    assert cube.segmentation[0, u, mid, mid] == 0 and cube.depth[0, u, mid, mid] == FAR
    down = torch.tensor(math.radians(-math.degrees(math.atan2(1.1, 3.0))))  # towards the sphere's centre
    view = render_perspective(scene, 0, 1, 1, fov_deg=1.0, pitch=float(down))
    assert view.segmentation[0, 0, 0] == 2
    assert view.depth[0, 0, 0] == pytest.approx(math.hypot(1.1, 3.0) - 0.5, abs=1e-3)
    assert cube.segmentation[0, f, mid, mid] == 0  # the sphere is below the horizon line
    assert (cube.segmentation[0, b] == 3).any()  # the box is behind


def test_invalid_scenes_and_views_are_usage_errors():
    with pytest.raises(UsageError):
        Scene3D(spheres=(Sphere(centre=(0.0, 1.0, 0.0), radius=1.0, colour="red"),), camera=Camera3D())
    with pytest.raises(UsageError):
        render_perspective(_scene(), 0, 8, 8, fov_deg=180.0)
