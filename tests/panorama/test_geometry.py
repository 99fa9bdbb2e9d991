"""Cube geometry: round trips, layouts, coverage, and py360convert as the reference."""

from __future__ import annotations

import numpy as np
import py360convert
import pytest
import torch

from genmotion.panorama import geometry as g


def smooth_equirect(h: int = 128, w: int = 256) -> np.ndarray:
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    lon, lat = (xx * 2 - 1) * np.pi, (0.5 - yy) * np.pi
    chans = [np.sin(lon) * np.cos(lat), np.sin(lat), np.cos(lon + 0.7) * np.cos(lat)]
    return (np.stack(chans, -1) * 0.5 + 0.5).astype(np.float32)


def as_torch(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None]


def test_e2c_matches_py360convert_dice_and_dict() -> None:
    img = smooth_equirect()
    cube = g.equirect_to_cube(as_torch(img), 64)
    dice = g.cube_to_dice(cube)[0].permute(1, 2, 0).numpy()
    assert np.abs(dice - py360convert.e2c(img, face_w=64, cube_format="dice")).mean() < 0.003
    ref = py360convert.e2c(img, face_w=64, cube_format="dict")
    for name, face in g.cube_to_dict(cube).items():
        assert np.abs(face[0].permute(1, 2, 0).numpy() - ref[name]).mean() < 0.005, name


def test_c2e_and_e2p_match_py360convert() -> None:
    img = smooth_equirect()
    cube = g.equirect_to_cube(as_torch(img), 64)
    back = g.cube_to_equirect(cube, 128, 256)[0].permute(1, 2, 0).numpy()
    ref = py360convert.c2e(py360convert.e2c(img, face_w=64, cube_format="dice"), 128, 256, cube_format="dice")
    assert np.abs(back - ref).mean() < 0.01
    R = g.rotations(torch.tensor([30.0]), torch.tensor([20.0]), torch.tensor([0.0]))
    view = g.equirect_to_perspective(as_torch(img), 90, R, 48, 64)[0].permute(1, 2, 0).numpy()
    v_fov = 2 * np.degrees(np.arctan(np.tan(np.pi / 4) * 48 / 64))
    assert np.abs(view - py360convert.e2p(img, (90, v_fov), 30, 20, (48, 64))).mean() < 0.005


def test_round_trips() -> None:
    e = as_torch(smooth_equirect())
    cube = g.equirect_to_cube(e, 64)
    assert (g.cube_to_equirect(cube, 128, 256) - e).abs().mean() < 1e-3
    assert torch.equal(g.cube_from_dice(g.cube_to_dice(cube)), cube)
    assert torch.equal(g.cube_from_dict(g.cube_to_dict(cube)), cube)
    with pytest.raises(Exception, match="lacks faces"):
        g.cube_from_dict({"F": cube[:, 0]})


def test_convention_front_at_centre_right_is_plus_x() -> None:
    d = g.cube_face_directions(1).reshape(6, 3)
    assert torch.allclose(d, torch.tensor([[0, 0, 1], [1, 0, 0], [0, 0, -1], [-1, 0, 0], [0, 1, 0], [0, -1, 0.0]]))
    e = torch.zeros(1, 1, 8, 16)
    e[..., 7:9] = 1  # the centre columns
    cube = g.equirect_to_cube(e, 4)
    assert cube[0, 0].mean() > 0.3 and cube[0, 2].mean() == 0  # F sees the centre, B does not


def test_perspective_projection_keeps_pixels_and_coverage() -> None:
    e = as_torch(smooth_equirect())
    R = g.rotations(torch.tensor([45.0, -100.0]), torch.tensor([10.0, -30.0]), torch.tensor([0.0, 15.0]))
    views = torch.cat([g.equirect_to_perspective(e, 90, R[i : i + 1], 48, 64) for i in range(2)])
    values, mask = g.perspective_to_equirect(views, 90, R, 128, 256)
    assert 0.05 < float(mask.mean()) < 0.2
    err = ((values - e) * mask).abs().sum() / mask.sum() / 3
    assert err < 2e-3
    _, cube_mask = g.perspective_to_cube(views, torch.tensor([90.0, 90.0]), R, 16)
    assert cube_mask.shape == (2, 6, 1, 16, 16)
    assert abs(float(cube_mask.mean()) - float(mask.mean())) < 0.05  # same solid angle, both samplings


def test_pad_faces_1px_reads_neighbours() -> None:
    e = as_torch(smooth_equirect())
    cube = g.equirect_to_cube(e, 32)
    padded = g.pad_faces_1px(cube)
    big = g.equirect_to_cube(e, 32)  # the border pixels of a face continue its neighbours
    assert padded.shape == (1, 6, 3, 34, 34)
    assert torch.equal(padded[..., 1:-1, 1:-1], big)
    assert (padded[..., 0, 1:-1] - padded[..., 1, 1:-1]).abs().mean() < 0.05
