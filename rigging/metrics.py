"""Rig metrics (RigNet-style, as RigAnything reports them): joint Chamfer CD-J2J, joint-to-bone CD-J2B,
bone-to-bone CD-B2B (bones sampled every 0.005), joint precision / recall / IoU under a tolerance with a
one-to-one matching, parent (tree) accuracy over matched joints, skin L1 and influence precision / recall,
and the vertex error after deforming with a random pose. All in the normalised units of the caller.

Axes: P predicted joints, G ground-truth joints, V vertices, J joints.
"""

from __future__ import annotations

import numpy as np

from genmotion.rigging.skeleton import Skeleton, bone_samples

__all__ = ["chamfer", "joint_matching", "skeleton_metrics", "skin_metrics"]


def _one_way(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    return float(cKDTree(b).query(a, k=1)[0].mean())


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Chamfer distance: the mean of the two one-way mean nearest distances."""
    return 0.5 * (_one_way(a, b) + _one_way(b, a))


def joint_matching(pred: np.ndarray, gt: np.ndarray, tolerance: float) -> list[tuple[int, int]]:
    """One-to-one (pred, gt) pairs closer than `tolerance`, by minimum total distance (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    d = np.linalg.norm(pred[:, None] - gt[None], axis=-1)
    cost = np.where(d < tolerance, d, 1e6)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if d[r, c] < tolerance]


def skeleton_metrics(pred: Skeleton, gt: Skeleton, tolerance: float = 0.1, step: float = 0.005) -> dict[str, float]:
    """CD-J2J, CD-J2B, CD-B2B, joint precision / recall / IoU at `tolerance`, parent accuracy, joint counts."""
    pj, gj = np.asarray(pred.joints, np.float64), np.asarray(gt.joints, np.float64)
    pb, gb = bone_samples(pred, step), bone_samples(gt, step)
    pairs = joint_matching(pj, gj, tolerance)
    tp = len(pairs)
    to_gt = dict(pairs)
    correct = total = 0
    for p, g in pairs:
        gp = int(gt.parents[g])
        if gp < 0:
            continue
        total += 1
        pp = int(pred.parents[p])
        correct += int(pp >= 0 and to_gt.get(pp) == gp)
    return {
        "cd_j2j": chamfer(pj, gj),
        "cd_j2b": 0.5 * (_one_way(pj, gb) + _one_way(gj, pb)),
        "cd_b2b": chamfer(pb, gb),
        "precision": tp / len(pj),
        "recall": tp / len(gj),
        "iou": tp / (len(pj) + len(gj) - tp),
        "parent_accuracy": correct / total if total else float("nan"),
        "joints_pred": float(len(pj)),
        "joints_gt": float(len(gj)),
    }


def skin_metrics(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.068) -> dict[str, float]:
    """Skin L1 (mean over vertices of the summed |w - w_gt|) and influence precision / recall (w > threshold)
    for weights (V, J) over the same joints."""
    l1 = float(np.abs(pred - gt).sum(axis=1).mean())
    p, g = pred > threshold, gt > threshold
    tp = float((p & g).sum())
    return {"skin_l1": l1, "influence_precision": tp / max(p.sum(), 1), "influence_recall": tp / max(g.sum(), 1)}
