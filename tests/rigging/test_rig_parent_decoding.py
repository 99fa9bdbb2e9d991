"""Parent (tree) accuracy and parent/stop decoding, written when the bench reported parent accuracy 0.0 on
every body plan: the metric is invariant to the joint numbering, an off-by-one parent index scores its bone wrong, the
decoder's parent indices and stop step reach the skeleton unshifted, and a 0 follows from the joint
matching alone (a joint counts only when it and its parent are both matched), which is what the toy's
recall of ~0.05 gave."""

import numpy as np
import pytest
import torch
from rigging_tiny import TINY

from genmotion.rigging.config import RigSamplingConfig
from genmotion.rigging.creatures import random_creature
from genmotion.rigging.metrics import skeleton_metrics
from genmotion.rigging.model import RigAnything
from genmotion.rigging.sampler import SampledSkeletons, joint_steps
from genmotion.rigging.skeleton import Skeleton, bfs_order, reorder


def _gt() -> Skeleton:
    sk = random_creature("quadruped", np.random.default_rng(3)).skeleton
    return reorder(sk, bfs_order(sk))


def test_parent_accuracy_ignores_the_numbering_and_small_errors():
    gt, rng = _gt(), np.random.default_rng(0)
    shuffled = reorder(gt, bfs_order(gt, rng))  # siblings in another order, as a sampled skeleton has them
    assert not np.array_equal(shuffled.joints, gt.joints)
    noisy = Skeleton(shuffled.joints + rng.uniform(-0.01, 0.01, shuffled.joints.shape), shuffled.parents)
    m = skeleton_metrics(noisy, gt, tolerance=0.05)
    assert m["recall"] == 1 and m["parent_accuracy"] == 1


def test_an_off_by_one_parent_index_scores_every_shifted_bone_wrong():
    gt = _gt()
    shifted = np.where(gt.parents > 0, gt.parents - 1, gt.parents)  # every non-root parent one joint early
    wrong = np.asarray(gt.parents) != shifted
    m = skeleton_metrics(Skeleton(gt.joints, shifted), gt)
    assert m["recall"] == 1
    assert m["parent_accuracy"] == pytest.approx(1 - wrong.sum() / (gt.num_joints - 1))
    assert wrong.sum() > gt.num_joints / 2


def test_parent_accuracy_needs_both_ends_of_a_bone_matched():
    gt = _gt()
    far = np.arange(gt.num_joints) % 2 == 1  # every odd joint moved far away; the tree itself is right
    moved = Skeleton(np.where(far[:, None], gt.joints + 10.0, gt.joints), gt.parents)
    m = skeleton_metrics(moved, gt)
    assert 0 < m["recall"] < 1
    matched_bones = [j for j in range(1, gt.num_joints) if not far[j] and not far[gt.parents[j]]]
    expect = len(matched_bones) / sum(1 for j in range(1, gt.num_joints) if not far[j])
    assert m["parent_accuracy"] == pytest.approx(expect)


def test_decoded_parents_and_stop_reach_the_skeleton_unshifted(monkeypatch):
    """A parent head forced to pick joint k - 2 (k - 1 at step 1) and to stop at step 5 must give a
    5-joint skeleton with parents [-1, 0, 0, 1, 2]."""
    torch.manual_seed(0)
    model = RigAnything(TINY).eval()

    def scores(h_BKC, xyz_BK3, cand_BIC):
        B, k = h_BKC.shape[0], cand_BIC.shape[1]  # step k picks among joints 0..k-1, or itself (stop)
        pair = torch.full((B, 1, k), -1e4)
        pair[:, :, max(k - 2, 0)] = 1e4
        stop = torch.full((B, 1), 1e5 if k == 5 else -1e4)
        return pair, stop

    monkeypatch.setattr(model, "parent_scores", scores)
    points = torch.randn(TINY.num_points, 6)
    *steps, out = joint_steps(model, points, RigSamplingConfig(sample_steps=2), 3, torch.Generator().manual_seed(1))
    assert isinstance(out, SampledSkeletons)
    assert [s.index for s in steps] == [0, 1, 2, 3, 4, 5]
    assert [int(s.parents[0]) for s in steps] == [0, 0, 0, 1, 2, 5]  # step 5 chose itself: stop
    for joints, parents, features in zip(out.joints, out.parents, out.features, strict=True):
        assert parents.tolist() == [-1, 0, 0, 1, 2]
        assert joints.shape == (5, 3) and features.shape == (5, TINY.width)
    np.testing.assert_allclose(out.joints[0].numpy(), torch.stack([s.positions[0] for s in steps[:5]]).numpy())


def test_parent_from_anchor_takes_the_pointer_choice_and_the_head_only_stops(monkeypatch):
    """With `parent_from_anchor`, a pointer forced to joint k - 1 and a parent head that would say joint 0
    give the chain [-1, 0, 1, 2]; the head's stop at step 4 still ends it."""
    torch.manual_seed(0)
    model = RigAnything(TINY).eval()

    def scores(h_BKC, xyz_BK3, cand_BIC):
        B, k = h_BKC.shape[0], cand_BIC.shape[1]
        pair = torch.full((B, 1, k), -1e4)
        pair[:, :, 0] = 1e4  # the head alone would hang every joint on the root
        return pair, torch.full((B, 1), 1e5 if k == 4 else -1e4)

    def pointer(h_BKC, anchor_BAC):
        B, K, A = h_BKC.shape[0], h_BKC.shape[1], anchor_BAC.shape[1]
        logits = torch.full((B, K, A), -1e4)
        logits[..., (A - 1) if A > 1 else 0] = 1e4  # the latest joint (table index A - 1)
        return logits

    monkeypatch.setattr(model, "parent_scores", scores)
    monkeypatch.setattr(model, "anchor_logits", pointer)
    cfg = RigSamplingConfig(sample_steps=2, parent_from_anchor=True, anchor_temperature=0.0)
    *_, out = joint_steps(model, torch.randn(TINY.num_points, 6), cfg, 2, torch.Generator().manual_seed(1))
    assert isinstance(out, SampledSkeletons)
    assert [p.tolist() for p in out.parents] == [[-1, 0, 1, 2]] * 2
    cfg = RigSamplingConfig(sample_steps=2)  # the default: the head's parent
    *_, out = joint_steps(model, torch.randn(TINY.num_points, 6), cfg, 2, torch.Generator().manual_seed(1))
    assert [p.tolist() for p in out.parents] == [[-1, 0, 0, 0]] * 2
