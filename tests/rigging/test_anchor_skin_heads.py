"""The anchored position head (pointer over the origin and earlier joints + offset), farthest-point
ordering, and the bone distances the skin head is given, checked on hand-made cases."""

import numpy as np
import pytest
import torch
from rigging_tiny import TINY

from genmotion.rigging.anchors import anchor_losses, anchor_mask, anchor_table, draw_positions, snap_inside
from genmotion.rigging.diffusion import cosine_alphas_cumprod
from genmotion.rigging.meshio import farthest_point_order
from genmotion.rigging.model import RigAnything, bone_distances, direction_labels, fourier, sphere_directions


def test_farthest_point_order_is_a_permutation_that_covers_first():
    rng = np.random.default_rng(0)
    cluster_a = rng.normal(0.0, 0.01, (50, 3))
    cluster_b = rng.normal(0.0, 0.01, (50, 3)) + np.array([5.0, 0.0, 0.0])
    xyz = np.concatenate([cluster_a, cluster_b])
    order = farthest_point_order(xyz)
    assert sorted(order.tolist()) == list(range(100))
    assert order[0] == 0 and order[1] >= 50  # the second point is in the other cluster


def test_farthest_point_order_prefix_matches_the_full_order_and_keeps_the_rest():
    xyz = np.random.default_rng(1).random((300, 3))
    full, prefix = farthest_point_order(xyz, count=300), farthest_point_order(xyz, count=40)
    assert prefix[:40].tolist() == full[:40].tolist()
    assert sorted(prefix.tolist()) == list(range(300))
    rest = prefix[40:]
    assert rest.tolist() == sorted(rest.tolist())  # the points after the prefix keep their original order
    d = np.linalg.norm(xyz[prefix[:40], None] - xyz[None, prefix[:40]], axis=-1) + np.eye(40)
    assert d.min() > 0.05  # the prefix is spread out


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


def test_anchor_mask_origin_first_then_earlier_joints():
    m = anchor_mask(4, 5)
    assert m[0].tolist() == [True, False, False, False, False]  # the root grows from the origin
    assert m[1].tolist() == [False, True, False, False, False]  # joint 1 from joint 0
    assert m[3].tolist() == [False, True, True, True, False]  # joint 3 from joints 0..2


def test_anchor_draw_is_anchor_plus_offset_and_losses_score_the_parent():
    torch.manual_seed(0)
    cfg = TINY.__class__(**{**TINY.__dict__, "position_head": "regression"})
    model = RigAnything(cfg)
    C = cfg.width
    joints = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.3, 0.0], [0.2, 0.0, 0.0]]]).expand(2, -1, -1)
    parents = torch.tensor([[0, 0, 0]]).expand(2, -1)
    table = anchor_table(torch.randn(2, C), torch.randn(2, 3, C), joints, parents)
    assert table[0].shape == (2, 4, C) and table[1].shape == (2, 4, 6)
    torch.testing.assert_close(table[1][0, 2], torch.tensor([0.0, 0.3, 0.0, 0.0, 0.3, 0.0]))  # joint 1, its bone
    h = torch.randn(2, C)
    alphas = cosine_alphas_cumprod(cfg.diffusion_steps).float()
    draw = draw_positions(model, h, table, 3, alphas, 4, 0.0, None)  # step 3: joints 0..2 are the anchors
    logits = model.anchor_logits(h[:, None], table[0])[:, 0]
    best = logits[:, 1:4].argmax(-1) + 1
    assert draw.anchor.tolist() == best.tolist()
    torch.testing.assert_close(draw.positions, table[1][torch.arange(2), best, :3] + cfg.offset_scale * draw.offset)
    torch.testing.assert_close(draw.offset, model.regress(draw.context))
    root = draw_positions(model, h, table, 0, alphas, 4, 1.0, torch.Generator().manual_seed(0))
    assert root.anchor.tolist() == [0, 0] and torch.allclose(root.logp, torch.zeros(2))  # only the origin
    hk = h[:, None].expand(-1, 4, -1)
    goal = torch.tensor([[0, 1, 1, 1]]).expand(2, -1)  # root <- origin, then joints 1, 2 and the stop <- joint 0
    target = torch.cat([joints, joints[:, :1]], dim=1)
    pointer, offset, hit, direction = anchor_losses(model, hk, table, goal, target, alphas, 1, None)
    assert pointer.shape == offset.shape == hit.shape == (2, 4) and direction.eq(0).all()  # no direction classes
    assert pointer[:, 0].abs().max() < 1e-6 and pointer[:, 1].abs().max() < 1e-6  # a single allowed anchor
    assert hit[:, :2].eq(1).all()
    x0 = (target[:, 3] - joints[:, 0]) / cfg.offset_scale  # the stop step: offset 0 from the root
    ctx = model.anchor_context(hk, table[0], table[1], goal[..., None])[:, 3, 0]
    torch.testing.assert_close(offset[:, 3], ((model.regress(ctx) - x0) ** 2).sum(-1))


def test_snap_inside_moves_outside_joints_to_the_medial_point():
    g = torch.Generator().manual_seed(0)
    n = torch.randn(4000, 3, generator=g)
    n = n / n.norm(dim=-1, keepdim=True)
    sphere = torch.cat([0.2 * n, n], dim=-1)[None].expand(2, -1, -1)  # radius 0.2 at the origin, outward normals
    x = torch.tensor([[0.5, 0.0, 0.0], [0.05, 0.0, 0.0]])  # outside, inside
    out = snap_inside(x, sphere)
    assert out[0].norm() < 0.03  # the medial point of a sphere is its centre
    torch.testing.assert_close(out[1], x[1])  # inside: kept


def test_local_context_starts_at_zero_and_reads_the_nearest_shape_tokens():
    torch.manual_seed(0)
    cfg = TINY.__class__(**{**TINY.__dict__, "local_tokens": 2})
    model, plain = RigAnything(cfg), RigAnything(TINY)
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and {k.split(".")[0] for k in missing} == {"local_rel", "local_mlp", "local_out"}
    B, S, C = 2, cfg.shape_tokens, cfg.width
    shape = (torch.randn(B, S, C), torch.randn(B, S, 3))
    joints, parents = torch.randn(B, 3, 3), torch.tensor([[0, 0, 1]]).expand(B, -1)
    table = anchor_table(torch.randn(B, C), torch.randn(B, 3, C), joints, parents, shape)
    h, idx = torch.randn(B, 4, C), torch.tensor([[[0], [1], [1], [2]]]).expand(B, -1, -1)
    # zero-initialised output: a model with the local context starts as the one without
    torch.testing.assert_close(model.anchor_context(h, table.feat, table.geo, idx, table.shape),
                               plain.anchor_context(h, table.feat, table.geo, idx))  # fmt: skip
    with pytest.raises(ValueError, match="shape"):
        model.anchor_context(h, table.feat, table.geo, idx)
    torch.nn.init.normal_(model.local_out.weight)
    q = torch.tensor([[[0.0, 0.0, 0.0]]])
    centres = torch.tensor([[[5.0, 0, 0], [0.1, 0, 0], [0, 0.2, 0], [3.0, 0, 0]]])
    feats = torch.randn(1, 4, C)
    out = model.local_context(q, feats, centres)
    rel = centres[:, [1, 2]] / cfg.offset_scale
    x = feats[:, [1, 2]] + model.local_rel(fourier(rel, cfg.fourier_bands))
    torch.testing.assert_close(out[0, 0], model.local_out(model.local_mlp(x).amax(dim=1))[0])
    far = feats.clone()
    far[:, [0, 3]] = 100.0  # tokens beyond the 2 nearest do not matter
    torch.testing.assert_close(model.local_context(q, far, centres), out)


def test_direction_classes_label_bone_vectors_and_start_as_the_model_without():
    dirs = sphere_directions(64)
    torch.testing.assert_close(dirs.norm(dim=-1), torch.ones(64))
    assert (dirs @ dirs.T - 2 * torch.eye(64)).amax() < 0.97  # spread: no two directions within ~14 degrees
    x0 = torch.stack([2.0 * dirs[5], 0.5 * dirs[40], torch.tensor([0.001, 0.0, 0.0])])
    assert direction_labels(x0, dirs).tolist() == [5, 40, 64]  # the nearest direction; 64 = the zero bone

    torch.manual_seed(0)
    cfg = TINY.__class__(**{**TINY.__dict__, "direction_bins": 16})
    model, plain = RigAnything(cfg), RigAnything(TINY)
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and {k.split(".")[0] for k in missing} == {"direction_head", "direction_embed"}
    B, C = 2, cfg.width
    joints = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.3, 0.0], [0.2, 0.0, 0.0]]]).expand(B, -1, -1)
    parents = torch.tensor([[0, 0, 0]]).expand(B, -1)
    table = anchor_table(torch.randn(B, C), torch.randn(B, 3, C), joints, parents)
    hk = torch.randn(B, 4, C)
    goal = torch.tensor([[0, 1, 1, 1]]).expand(B, -1)
    target = torch.cat([joints, joints[:, :1]], dim=1)
    alphas = cosine_alphas_cumprod(cfg.diffusion_steps).float()
    ours = anchor_losses(model, hk, table, goal, target, alphas, 2, torch.Generator().manual_seed(1))
    theirs = anchor_losses(plain, hk, table, goal, target, alphas, 2, torch.Generator().manual_seed(1))
    for a, b in zip(ours[:3], theirs[:3], strict=True):  # a zero class embedding: the offset head is unchanged
        torch.testing.assert_close(a, b)
    label = direction_labels(
        (target - table.geo[torch.arange(B)[:, None], goal, :3]) / cfg.offset_scale, model.directions
    )
    assert label[:, 3].eq(16).all()  # the stop step grows a zero bone from the root
    expected = torch.nn.functional.cross_entropy(
        model.direction_logits(model.anchor_context(hk, table.feat, table.geo, goal[..., None])[:, :, 0]).flatten(0, 1),
        label.flatten(),
        reduction="none",
    )
    torch.testing.assert_close(ours[3], expected.view(B, 4))
    # drawing (temperature 0, a regression head for exactness): the most likely class first, then the offset
    # from the context with that class's embedding
    reg = RigAnything(TINY.__class__(**{**cfg.__dict__, "position_head": "regression"}))
    torch.nn.init.normal_(reg.direction_embed.weight)
    h = torch.randn(B, C)
    draw = draw_positions(reg, h, table, 3, alphas, 4, 0.0, None)
    ctx = reg.anchor_context(h[:, None], table.feat, table.geo, draw.anchor[:, None, None])[:, 0, 0]
    label = reg.direction_logits(ctx).argmax(-1)
    torch.testing.assert_close(draw.context, reg.with_direction(ctx, label))
    torch.testing.assert_close(draw.offset, reg.regress(draw.context))
    # at temperature 1 the draw's log-probability is the anchor's plus the class's
    draw = draw_positions(reg, h, table, 3, alphas, 4, 1.0, torch.Generator().manual_seed(2))
    ctx = reg.anchor_context(h[:, None], table.feat, table.geo, draw.anchor[:, None, None])[:, 0, 0]
    label = (draw.context - ctx)[:, None].sub(reg.direction_embed.weight[None]).norm(dim=-1).argmin(-1)
    anchor_logp = torch.log_softmax(reg.anchor_logits(h[:, None], table.feat)[:, 0, 1:4], -1)
    class_logp = torch.log_softmax(reg.direction_logits(ctx), -1)
    rows = torch.arange(B)
    torch.testing.assert_close(draw.logp, anchor_logp[rows, draw.anchor - 1] + class_logp[rows, label])
