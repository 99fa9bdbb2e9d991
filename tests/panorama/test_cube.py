"""Planner order, padder adjacency and blending, cube RoPE positions on the cross."""

from __future__ import annotations

import numpy as np
import torch

from genmotion.panorama import geometry as g
from genmotion.panorama.cube import (
    NEIGHBOURS,
    PAD_TABLE,
    _band,
    blend_back,
    blend_seams,
    cross_positions,
    face_coverage,
    pad_faces,
    plan_faces,
)

OPPOSITE = {0: 2, 1: 3, 2: 0, 3: 1, 4: 5, 5: 4}


def test_planner_orders_by_descending_coverage() -> None:
    mask = torch.zeros(3, 6, 1, 8, 8)
    mask[:, 3] = 1  # L fully seen
    mask[:, 4, :, :4] = 1  # U half
    mask[0, 0, :, :2] = 1  # F a little, one frame
    assert plan_faces(mask) == [3, 4, 0, 1, 2, 5]
    assert torch.allclose(face_coverage(mask)[[3, 4]], torch.tensor([1.0, 0.5]))
    assert plan_faces(torch.zeros(2, 6, 1, 4, 4)) == [0, 1, 2, 3, 4, 5]  # ties keep F R B L U D
    assert plan_faces(mask, "fixed") == list(range(6))


def test_adjacency_is_symmetric_and_excludes_the_opposite_face() -> None:
    for f, sides in PAD_TABLE.items():
        assert set(NEIGHBOURS[f]) == set(range(6)) - {f, OPPOSITE[f]}
        for side, (n, edge, turns) in sides.items():
            back = PAD_TABLE[n][edge]  # every edge pair is listed from both faces, with the inverse turn
            assert back[0] == f and back[1] == side and (back[2] + turns) % 4 == 0, (f, side)


def test_padder_strips_continue_the_face_geometrically() -> None:
    """Each band of each face matches the wider-FoV extension of that face, for all 24 sides."""
    H, W = 256, 512
    yy, xx = np.meshgrid(np.linspace(0, 1, H), np.linspace(0, 1, W), indexing="ij")
    lon, lat = (xx * 2 - 1) * np.pi, (0.5 - yy) * np.pi
    img = np.stack([np.sin(lon) * np.cos(lat), np.sin(lat), np.cos(lon + 0.7) * np.cos(lat)], 0)
    e = torch.from_numpy(img.astype(np.float32))[None]
    S, P = 32, 4
    padded = pad_faces(g.equirect_to_cube(e, S)[0], P)
    forward, right, up = g._bases(e)
    a = (torch.arange(-P, S + P) + 0.5) * 2 / S - 1
    for f in range(6):
        d = forward[f] + a[None, :, None] * right[f] - a[:, None, None] * up[f]
        ref = g.sample_equirect(e, d.reshape(-1, 3)).reshape(3, S + 2 * P, S + 2 * P)
        for side in PAD_TABLE[f]:
            rows, cols = _band(padded[f], side, P)
            assert (padded[f][:, rows, cols] - ref[:, rows, cols]).abs().mean() < 0.03, (f, side)


def test_blend_back_ramps_from_the_new_band_at_the_seam() -> None:
    cube = torch.zeros(6, 1, 8, 8)
    padded = pad_faces(cube, 2, (0,))[0] + 1.0  # F's generated padding, all ones
    blend_back(cube, padded, 0, 2, into={1})  # only R is made
    assert torch.allclose(cube[1, 0, :, 0], torch.ones(8))  # R's left column: the seam, all new
    assert torch.allclose(cube[1, 0, :, 1], torch.zeros(8))  # inland end of the ramp: the old R
    assert cube[3].abs().sum() == 0 and cube[4].abs().sum() == 0  # L and U were not made: untouched


def test_cube_rope_positions_on_the_cross() -> None:
    c = 4
    pos = cross_positions(c)  # (6, 2, c, c)
    rows, cols = pos[:, 0], pos[:, 1]
    assert torch.equal(rows[0, 0], torch.full((c,), float(c)))  # F: middle row band, columns 0..c-1
    assert torch.equal(cols[1, :, 0], cols[0, :, -1] + 1)  # R starts where F ends
    assert torch.equal(cols[3, 0], torch.arange(3 * c, 4 * c).float())  # L in columns 3c..4c-1
    assert torch.equal(rows[4, -1], rows[0, 0] - 1)  # U's bottom row sits right above F's top row
    assert torch.equal(rows[5, 0], rows[0, -1] + 1) and torch.equal(cols[5], cols[0])  # D below F
    padded = pad_faces(pos, 1, (0,))[0]  # padding cells take the neighbours' positions
    assert torch.equal(padded[:, 1:-1, -1], pos[1][:, :, 0])  # F's right band = R's first column
    assert torch.equal(padded[:, 0, 1:-1], pos[4][:, -1, :])  # F's top band = U's last row


def test_blend_back_inverts_the_padder_rotation_on_every_side() -> None:
    """For all 24 sides: a generated band equal to the neighbour's own pixels leaves it unchanged (the blend
    turns the band back exactly as the padder turned it), and a band of ones reaches the neighbour's pixels
    on the seam in full and its inland end not at all."""
    S, P = 8, 3
    cube = torch.randn(2, 6, 1, S, S, generator=torch.Generator().manual_seed(0))
    for f in range(6):
        same = cube.clone()
        blend_back(same, pad_faces(cube, P, (f,))[:, 0], f, P, into=set(range(6)))
        assert torch.equal(same, cube), f
        for side, (n, edge, _) in PAD_TABLE[f].items():
            zeros = torch.zeros_like(cube)
            ones = pad_faces(zeros, P, (f,))[:, 0] + 1.0
            blend_back(zeros, ones, f, P, into={n})
            seam = {"top": (0, slice(None)), "bottom": (-1, slice(None)), "left": (slice(None), 0)}
            inland = {"top": (P - 1, slice(None)), "bottom": (-P, slice(None)), "left": (slice(None), P - 1)}
            rows_s, cols_s = seam.get(edge, (slice(None), -1))
            rows_i, cols_i = inland.get(edge, (slice(None), -P))
            assert torch.allclose(zeros[:, n, 0, rows_s, cols_s], torch.tensor(1.0)), (f, side)
            assert torch.allclose(zeros[:, n, 0, rows_i, cols_i], torch.tensor(0.0)), (f, side)
            assert zeros.abs().sum() == zeros[:, n].abs().sum(), (f, side)  # no other face touched


def test_blend_seams_keeps_agreeing_predictions_and_ramps_across_every_seam() -> None:
    S, P = 8, 2
    cube = torch.randn(2, 6, 1, S, S, generator=torch.Generator().manual_seed(1))
    truth = {f: pad_faces(cube, P, (f,))[:, 0] for f in range(6)}  # every padding predicts its neighbours exactly
    torch.testing.assert_close(blend_seams(cube, truth, P), cube)
    zeros = torch.zeros_like(cube)
    for f in range(6):
        for side, (n, edge, _) in PAD_TABLE[f].items():
            guess = {g: pad_faces(zeros, P, (g,))[:, 0] for g in range(6)}
            rows, cols = _band(guess[n], edge, P)
            guess[n][..., rows, cols] = 1.0  # n's padding says f's band (and only it) is 1
            out = blend_seams(zeros, guess, P)[:, f, 0]
            at_seam = {
                "top": out[:, 0, 2:-2],
                "bottom": out[:, -1, 2:-2],
                "left": out[:, 2:-2, 0],
                "right": out[:, 2:-2, -1],
            }
            inland = {"top": out[:, P - 1, 2:-2], "bottom": out[:, -P, 2:-2], "left": out[:, 2:-2, P - 1]}
            inland["right"] = out[:, 2:-2, -P]
            torch.testing.assert_close(at_seam[side], torch.full_like(at_seam[side], 0.5 - 1 / (4 * P)))
            torch.testing.assert_close(inland[side], torch.full_like(inland[side], 1 / (4 * P)))
            assert float(out[:, P:-P, P:-P].abs().sum()) == 0.0, (f, side)  # the face's middle keeps its own
