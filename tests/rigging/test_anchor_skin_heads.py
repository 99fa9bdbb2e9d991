"""The anchored position head (pointer over shape tokens + offset), farthest-point ordering, and the bone
distances the skin head is given, checked on hand-made cases."""

import numpy as np
import torch
from rigging_tiny import TINY

from genmotion.rigging.anchors import anchor_losses, draw_positions
from genmotion.rigging.diffusion import cosine_alphas_cumprod
from genmotion.rigging.meshio import farthest_point_order
from genmotion.rigging.model import RigAnything, bone_distances


def test_farthest_point_order_is_a_permutation_that_covers_first():
    rng = np.random.default_rng(0)
    cluster_a = rng.normal(0.0, 0.01, (50, 3))
    cluster_b = rng.normal(0.0, 0.01, (50, 3)) + np.array([5.0, 0.0, 0.0])
    xyz = np.concatenate([cluster_a, cluster_b])
    order = farthest_point_order(xyz)
    assert sorted(order.tolist()) == list(range(100))
    assert order[0] == 0 and order[1] >= 50  # the second point is in the other cluster


def test_bone_distances_by_hand():
    # chain 0 -> 1 -> 2 along x; joint 2 is a leaf, so it owns no bone
    joints = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]]])
    parents = torch.tensor([[0, 0, 1]])
    bone = torch.tensor([[False, True, True]])
    points = torch.tensor([[[0.5, 1.0, 0.0], [1.5, 0.0, 2.0], [3.0, 0.0, 0.0]]])
    d = bone_distances(points, joints, parents, bone)[0]
    torch.testing.assert_close(d[0, :2], torch.tensor([1.0, (0.5**2 + 1.0) ** 0.5]))
    torch.testing.assert_close(d[1, :2], torch.tensor([(0.5**2 + 4.0) ** 0.5, 2.0]))
    torch.testing.assert_close(d[2, :2], torch.tensor([2.0, 1.0]))
    assert (d[:, 2] == 3.0).all()  # the leaf: no bone


def test_skin_prior_prefers_the_nearest_bone_at_init():
    torch.manual_seed(0)
    model = RigAnything(TINY)
    joints = torch.tensor([[[0.0, 0, 0], [0.5, 0, 0], [0.0, 0.5, 0], [0.5, 0.5, 0]]])
    parents = torch.tensor([[0, 0, 0, 2]])  # bones 0->1, 0->2 (owned by 0) and 2->3 (owned by 2)
    bone = torch.tensor([[False, True, True, True]])
    points = torch.tensor([[[0.25, 0.55, 0.0, 0, 1, 0], [0.25, -0.05, 0.0, 0, -1, 0]]])
    pf = torch.zeros(1, 2, TINY.width)  # no learnt features: the prior and the geometry decide
    w = torch.softmax(model.skin_logits(pf, torch.zeros(1, 4, TINY.width), points[..., :3], joints, parents, bone), -1)
    assert w[0, 0].argmax() == 2 and w[0, 1].argmax() == 0  # near bone 2->3, near bone 0->1
    assert w[0, :, 1].max() < 0.05 and w[0, :, 3].max() < 0.05  # leaves carry (almost) no weight


def test_anchor_draw_is_centre_plus_offset_and_losses_point_at_the_nearest_centre():
    torch.manual_seed(0)
    cfg = TINY.__class__(**{**TINY.__dict__, "position_head": "regression"})
    model = RigAnything(cfg)
    S, C = cfg.shape_tokens, cfg.width
    shape, centres = torch.randn(2, S, C), torch.cat([torch.rand(2, S, 3) * 2 - 1, torch.randn(2, S, 3)], -1)
    h = torch.randn(2, C)
    alphas = cosine_alphas_cumprod(cfg.diffusion_steps).float()
    draw = draw_positions(model, h, shape, centres, alphas, 4, 0.0, None)
    best = model.anchor_logits(h[:, None], shape)[:, 0].argmax(-1)
    expected = centres[torch.arange(2), best, :3] + cfg.offset_scale * draw.offset
    torch.testing.assert_close(draw.positions, expected)
    torch.testing.assert_close(draw.offset, model.regress(draw.context))
    target = centres[:, :2, :3] + 0.01  # each step's joint sits next to token 0 and token 1
    pointer, offset, hit = anchor_losses(model, h[:, None].expand(-1, 2, -1), shape, centres, target, alphas, 1, None)
    assert pointer.shape == offset.shape == hit.shape == (2, 2) and torch.isfinite(pointer).all()
    assert torch.isfinite(offset).all()
    d = torch.cdist(target, centres[..., :3])
    torch.testing.assert_close(hit, d.gather(-1, best[:, None, None].expand(-1, 2, 1))[..., 0])
    soft_best = d.argmin(-1)  # the soft label peaks at the nearest centre: tokens 0 and 1
    assert soft_best.tolist() == [[0, 1], [0, 1]]
