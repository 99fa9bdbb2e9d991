"""The seam error: low on a smooth panorama, high when faces disagree at their edges, split by edge kind."""

from __future__ import annotations

import numpy as np
import torch

from genmotion.panorama import geometry as g
from genmotion.panorama.metrics import seam_error, seam_parts


def smooth_cube(face: int = 16) -> torch.Tensor:
    yy, xx = np.meshgrid(np.linspace(0, 1, 128), np.linspace(0, 1, 256), indexing="ij")
    lon, lat = (xx * 2 - 1) * np.pi, (0.5 - yy) * np.pi
    img = np.stack([np.sin(3 * lon) * np.cos(lat), np.sin(2 * lat), np.cos(lon + 0.7) * np.cos(lat)], 0)
    return g.equirect_to_cube(torch.from_numpy(img.astype(np.float32))[None], face)


def test_smooth_panorama_has_seams_like_its_interior() -> None:
    cube = smooth_cube()
    assert 0.5 < seam_error(cube) < 1.2
    parts = seam_parts(cube)
    assert 0.2 < parts["lateral_seam"] < 1.2 and 0.2 < parts["top_bottom_seam"] < 1.2


def test_faces_that_disagree_raise_the_seam_error_of_their_edges() -> None:
    cube = smooth_cube()
    lifted = cube.clone()
    lifted[:, 4] += 0.3  # U brighter: its 4 edges, all top/bottom kind
    assert seam_error(lifted) > 3 * seam_error(cube)
    before, after = seam_parts(cube), seam_parts(lifted)
    assert after["top_bottom_seam"] > 3 * before["top_bottom_seam"]
    assert abs(after["lateral_jump"] - before["lateral_jump"]) < 1e-6  # the horizon's edges did not move
