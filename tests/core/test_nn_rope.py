import pytest
import torch

from genmotion.errors import UsageError
from genmotion.nn import Rotary, grid_positions_2d, grid_positions_3d, multiscale_positions


def test_rope_score_depends_only_on_offset():
    g = torch.Generator().manual_seed(0)
    rotary = Rotary(16)
    q, k = torch.randn(1, 1, 1, 16, generator=g), torch.randn(1, 1, 1, 16, generator=g)

    def score(m: int, n: int) -> torch.Tensor:
        return (rotary(q, torch.tensor([m])) * rotary(k, torch.tensor([n]))).sum()

    assert torch.allclose(score(3, 1), score(12, 10), atol=1e-5)
    assert torch.allclose(score(0, 5), score(100, 105), atol=1e-4)
    assert not torch.allclose(score(3, 1), score(3, 2), atol=1e-3)


def test_rope_multi_axis_relative_per_axis_and_norm():
    g = torch.Generator().manual_seed(1)
    rotary = Rotary(24, axes_dims=(8, 8, 8))
    q, k = torch.randn(1, 1, 1, 24, generator=g), torch.randn(1, 1, 1, 24, generator=g)

    def score(pq: list[float], pk: list[float]) -> torch.Tensor:
        return (rotary(q, torch.tensor([pq])) * rotary(k, torch.tensor([pk]))).sum()

    assert torch.allclose(score([2, 3, 4], [1, 1, 1]), score([7, 5, 9], [6, 3, 6]), atol=1e-4)
    x = torch.randn(2, 3, 5, 24, generator=g)
    rotated = rotary(x, grid_positions_3d(5, 1, 1))
    assert torch.allclose(rotated.norm(dim=-1), x.norm(dim=-1), atol=1e-5)


def test_grid_shapes():
    p2 = grid_positions_2d(3, 4)
    assert p2.shape == (12, 2) and p2[5].tolist() == [1, 1]
    p3 = grid_positions_3d(2, 3, 4, start_frame=5)
    assert p3.shape == (24, 3) and p3[-1].tolist() == [6, 2, 3]
    x = torch.randn(2, 4, 24, 12)
    assert Rotary(12, axes_dims=(4, 4, 4))(x, p3).shape == x.shape
    assert Rotary(8, axes_dims=(4, 4))(torch.randn(1, 2, 12, 8), p2).shape == (1, 2, 12, 8)


def test_multiscale_positions_share_the_fine_range():
    fine = multiscale_positions(3, 4, 4, 4, 4)
    assert torch.equal(fine[:, 1:], grid_positions_2d(4, 4).float())
    assert (fine[:, 0] == 3).all()
    coarse = multiscale_positions(3, 2, 2, 4, 4)
    assert coarse[:, 1].tolist() == [0.5, 0.5, 2.5, 2.5]  # centre of the 2x2 fine cells each covers
    assert multiscale_positions(0, 1, 1, 16, 16)[0, 1:].tolist() == [7.5, 7.5]


def test_rope_axes_must_fit():
    with pytest.raises(UsageError, match="do not fit"):
        Rotary(16, axes_dims=(8, 6))


def test_rotate_full_is_bit_identical_to_rotate():
    from genmotion.nn.rope import apply_rope, rotate_full, rotation_tables

    g = torch.Generator().manual_seed(0)
    x, angles = torch.randn(2, 3, 5, 8, generator=g), torch.randn(5, 4, generator=g) * 10
    assert torch.equal(rotate_full(x, *rotation_tables(angles, x.dtype)), apply_rope(x, angles))
