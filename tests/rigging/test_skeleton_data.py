"""BFS serialisation, forward kinematics, creatures, training samples and the training loss."""

import numpy as np
import pytest
import torch
from rigging_tiny import TINY

from genmotion.rigging.config import RigDataConfig
from genmotion.rigging.creatures import BODY_PLANS, HELD_OUT_PLANS, TRAIN_PLANS, random_creature
from genmotion.rigging.data import collate, creature_sample
from genmotion.rigging.diffusion import cosine_alphas_cumprod
from genmotion.rigging.geometry import _segments, analytic_skin, sample_capsules, segment_distance
from genmotion.rigging.metrics import skeleton_metrics, skin_metrics
from genmotion.rigging.skeleton import Skeleton, bfs_order, pose_skeleton, random_rotations, reorder
from genmotion.rigging.train import RigAnythingTask, RigTrainModel, jitter_joints, parent_logits, rig_losses


def _edges(sk: Skeleton) -> set[tuple[tuple[float, ...], tuple[float, ...]]]:
    j = np.round(sk.joints, 9)
    return {(tuple(j[p]), tuple(j[c])) for p, c in sk.bones()}


def test_bfs_round_trip_keeps_the_tree():
    rng = np.random.default_rng(1)
    sk = random_creature("spider", rng).skeleton
    scrambled = reorder(sk, rng.permutation(sk.num_joints))  # any numbering
    assert not scrambled.is_bfs()
    for shuffle in (None, rng):
        order = bfs_order(scrambled, shuffle)
        bfs = reorder(scrambled, order)
        assert bfs.is_bfs() and bfs.parents[0] == -1
        assert _edges(bfs) == _edges(sk)  # the same bones
        inverse = np.argsort(order)
        back = reorder(bfs, inverse)
        np.testing.assert_array_equal(back.parents, scrambled.parents)
        np.testing.assert_allclose(back.joints, scrambled.joints)


def test_sibling_shuffle_changes_the_order_not_the_depths():
    sk = random_creature("spider", np.random.default_rng(2)).skeleton
    orders = {tuple(bfs_order(sk, np.random.default_rng(s))) for s in range(6)}
    assert len(orders) > 1


def test_pose_keeps_bone_lengths_and_identity_is_rest():
    sk = random_creature("quadruped", np.random.default_rng(3)).skeleton
    posed, T = pose_skeleton(sk, random_rotations(sk.num_joints, 40.0, np.random.default_rng(0)))
    b = sk.bones()
    rest_len = np.linalg.norm(sk.joints[b[:, 1]] - sk.joints[b[:, 0]], axis=1)
    np.testing.assert_allclose(np.linalg.norm(posed[b[:, 1]] - posed[b[:, 0]], axis=1), rest_len, atol=1e-9)
    same, T0 = pose_skeleton(sk, np.tile(np.eye(3), (sk.num_joints, 1, 1)))
    np.testing.assert_allclose(same, sk.joints)
    np.testing.assert_allclose(T0[:, :, 3], 0.0, atol=1e-12)


@pytest.mark.parametrize("plan", sorted(BODY_PLANS))
def test_creatures_are_trees_with_surface_samples_and_skin(plan):
    rng = np.random.default_rng(4)
    c = random_creature(plan, rng)
    assert 2 <= c.skeleton.num_joints <= 64
    bfs_order(c.skeleton)  # one tree
    pts, nrm = sample_capsules(c, 512, rng)
    np.testing.assert_allclose(np.linalg.norm(nrm, axis=1), 1.0, atol=1e-6)
    sk = c.skeleton
    a, b, r = _segments(c)  # every bone's capsule and the root's blob
    d = segment_distance(pts, a, b) - r
    assert (d.min(axis=1) < 1e-6).all() and (d.min(axis=1) > -1e-6).all()  # on the union's surface
    w = analytic_skin(c, pts)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    leaves = [j for j, k in enumerate(sk.children()) if not k]
    assert (w[:, leaves] == 0).all()  # a leaf moves no bone


def test_held_out_plans_are_not_trained_on():
    assert set(HELD_OUT_PLANS).isdisjoint(TRAIN_PLANS)
    assert set(RigDataConfig().plans) == set(TRAIN_PLANS)


def test_training_sample_is_normalised_bfs_and_batches_pad():
    cfg = RigDataConfig(num_points=256, skin_points=64)
    rng = np.random.default_rng(5)
    samples = [creature_sample(random_creature(p, rng), cfg, rng) for p in ("biped", "snake")]
    for s in samples:
        assert np.abs(s.points[:, :3]).max() == pytest.approx(1.0, abs=1e-5)
        assert Skeleton(s.joints, s.parents).is_bfs()
    batch = collate(samples, 64, rng)
    J = max(len(s.parents) for s in samples)
    assert batch["joints"].shape == (2, J, 3) and batch["skin"].shape == (2, 64, J)
    assert batch["num_joints"].tolist() == [len(s.parents) for s in samples]


def test_parent_logits_allow_earlier_joints_and_self_only():
    pair, stop = torch.randn(1, 4, 3), torch.tensor([[10.0, 11.0, 12.0, 13.0]])
    logits = parent_logits(pair, stop)
    assert logits.shape == (1, 4, 4)
    for k in range(4):
        assert logits[0, k, k] == stop[0, k]  # column k is "stop" (self)
        assert torch.isinf(logits[0, k, k + 1 :]).all()
        torch.testing.assert_close(logits[0, k, :k], pair[0, k, :k])


@pytest.mark.parametrize("local_tokens", [0, 4])
def test_losses_are_finite_and_train(local_tokens):
    torch.manual_seed(0)
    from genmotion.rigging.model import RigAnything

    net = TINY.__class__(**{**TINY.__dict__, "local_tokens": local_tokens})
    model = RigAnything(net)
    cfg = RigDataConfig(num_points=256, skin_points=32, max_joints=8)
    rng = np.random.default_rng(6)
    samples = []
    while len(samples) < 3:
        s = creature_sample(random_creature("snake", rng), cfg, rng)
        if len(s.parents) <= 8:
            samples.append(s)
    batch = collate(samples, 32, rng)
    alphas = cosine_alphas_cumprod(100).float()
    parts = rig_losses(model, batch, RigTrainModel(net=net), alphas, torch.Generator().manual_seed(0))
    loss = parts["position"] + parts["anchor"] + parts["parent"] + parts["skin"]
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if not n.startswith("regressor"))


def _snake_batch(max_joints: int = 8):
    cfg = RigDataConfig(num_points=256, skin_points=32, max_joints=max_joints)
    rng = np.random.default_rng(6)
    samples = []
    while len(samples) < 3:
        s = creature_sample(random_creature("snake", rng), cfg, rng)
        if len(s.parents) <= max_joints:
            samples.append(s)
    return collate(samples, 32, rng)


def test_context_jitter_moves_what_the_model_reads_not_the_targets():
    from genmotion.rigging.model import RigAnything

    torch.manual_seed(0)
    model = RigAnything(TINY)
    batch = _snake_batch()
    joints, n = batch["joints"], batch["num_joints"]
    jittered = jitter_joints(joints, n, 0.05, torch.Generator().manual_seed(1))
    real = torch.arange(joints.shape[1])[None] < n[:, None]
    assert torch.equal(jittered[~real], joints[~real])  # padding untouched
    moved = (jittered - joints)[real]
    assert (moved.abs() > 0).all() and moved.std() < 0.05
    alphas = cosine_alphas_cumprod(100).float()
    cfg = RigTrainModel(net=TINY)

    def losses(context):
        return rig_losses(model, batch, cfg, alphas, torch.Generator().manual_seed(0), context_joints=context)

    clean, same, noisy = losses(None), losses(joints.clone()), losses(jittered)
    assert all(torch.equal(clean[k], same[k]) for k in clean)  # the true joints as context = the default
    assert not torch.equal(clean["position"], noisy["position"])
    task = RigAnythingTask()
    task.build_model(RigTrainModel(net=TINY, context_noise=0.05))
    loss, parts = task.loss(model, batch)
    assert torch.isfinite(loss) and set(parts) == set(clean)


def test_metrics_of_a_perfect_rig():
    sk = random_creature("biped", np.random.default_rng(7)).skeleton
    m = skeleton_metrics(sk, sk)
    assert m["cd_j2j"] == 0 and m["cd_b2b"] == 0 and m["precision"] == m["recall"] == m["iou"] == 1
    assert m["parent_accuracy"] == 1
    w = np.eye(4)[[0, 1, 2, 3, 0]]
    assert skin_metrics(w, w)["skin_l1"] == 0
    off = Skeleton(sk.joints + np.array([5.0, 0, 0]), sk.parents)
    assert skeleton_metrics(off, sk)["recall"] == 0
