"""Skeleton trees: the BFS serialisation RigAnything generates joints in (parents before children,
siblings shuffled in training), bone sampling and forward kinematics for linear-blend-skinning poses.

Axes: J joints, N points. A skeleton is `joints` (J, 3) and `parents` (J,) with `parents[root] = -1`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = ["Skeleton", "bfs_order", "bone_samples", "pose_skeleton", "random_rotations", "reorder"]


@dataclass(frozen=True)
class Skeleton:
    """A joint tree: positions (J, 3) float, parents (J,) int with -1 at the single root."""

    joints: np.ndarray
    parents: np.ndarray

    def __post_init__(self) -> None:
        if self.joints.ndim != 2 or self.joints.shape[1] != 3 or len(self.parents) != len(self.joints):
            raise ValueError(f"joints (J, 3) and parents (J,) expected, got {self.joints.shape}, {self.parents.shape}")
        if int((np.asarray(self.parents) < 0).sum()) != 1:
            raise ValueError("a skeleton has exactly one root (parent -1)")

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @property
    def root(self) -> int:
        return int(np.flatnonzero(np.asarray(self.parents) < 0)[0])

    def children(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in range(self.num_joints)]
        for j, p in enumerate(self.parents):
            if p >= 0:
                out[int(p)].append(j)
        return out

    def bones(self) -> np.ndarray:
        """(J - 1, 2) index pairs (parent, child)."""
        return np.array([(int(p), j) for j, p in enumerate(self.parents) if p >= 0], dtype=np.int64).reshape(-1, 2)

    def is_bfs(self) -> bool:
        """True when the root is joint 0, every parent precedes its child and depths never decrease."""
        p = np.asarray(self.parents)
        if p[0] != -1 or any(p[j] >= j for j in range(1, len(p))):
            return False
        depth = np.zeros(len(p), dtype=np.int64)
        for j in range(1, len(p)):
            depth[j] = depth[p[j]] + 1
        return bool(np.all(np.diff(depth) >= 0)) and bool(np.all(np.diff(p[1:]) >= 0))


def bfs_order(skeleton: Skeleton, rng: np.random.Generator | None = None) -> np.ndarray:
    """The BFS visiting order from the root (J,); siblings shuffled with `rng`, else in index order."""
    kids = skeleton.children()
    order, queue = [], deque([skeleton.root])
    while queue:
        j = queue.popleft()
        order.append(j)
        nxt = list(kids[j])
        if rng is not None:
            rng.shuffle(nxt)
        queue.extend(nxt)
    if len(order) != skeleton.num_joints:
        raise ValueError("the parents do not form one tree (a cycle or an unreachable joint)")
    return np.asarray(order, dtype=np.int64)


def reorder(skeleton: Skeleton, order: np.ndarray) -> Skeleton:
    """The skeleton with joints renumbered so that new joint i is old joint `order[i]`."""
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    old_parents = np.asarray(skeleton.parents)[order]
    parents = np.where(old_parents < 0, -1, inverse[np.maximum(old_parents, 0)])
    return Skeleton(np.asarray(skeleton.joints)[order].copy(), parents.astype(np.int64))


def bone_samples(skeleton: Skeleton, step: float = 0.005) -> np.ndarray:
    """Points every `step` along every bone (M, 3), joints included; a one-joint skeleton gives its joint."""
    joints = np.asarray(skeleton.joints, dtype=np.float64)
    out = [joints]
    for p, c in skeleton.bones():
        length = float(np.linalg.norm(joints[c] - joints[p]))
        n = max(int(np.ceil(length / step)), 1)
        t = np.linspace(0.0, 1.0, n + 1)[1:-1, None]
        out.append(joints[p] + t * (joints[c] - joints[p]))
    return np.concatenate(out, axis=0)


def random_rotations(n: int, max_degrees: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 3) rotations about random axes by angles ~ N(0, max/2) clipped to +-max degrees."""
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True) + 1e-12
    angles = np.deg2rad(np.clip(rng.normal(0.0, max_degrees / 2, size=n), -max_degrees, max_degrees))
    K = np.zeros((n, 3, 3))
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -axes[:, 2], axes[:, 1], -axes[:, 0]
    K = K - K.transpose(0, 2, 1)
    s, c = np.sin(angles)[:, None, None], np.cos(angles)[:, None, None]
    return np.eye(3)[None] + s * K + (1 - c) * (K @ K)


def pose_skeleton(skeleton: Skeleton, local_rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics of a rest skeleton under local rotations (J, 3, 3).

    Returns the posed joints (J, 3) and each joint's world transform as (J, 3, 4) `[R | t]` mapping a rest
    point x to `R x + t` (the linear-blend-skinning matrix of that joint)."""
    rest = np.asarray(skeleton.joints, dtype=np.float64)
    J = len(rest)
    glob = np.zeros((J, 3, 3))
    posed = np.zeros((J, 3))
    for j in bfs_order(skeleton):
        p = int(skeleton.parents[j])
        if p < 0:
            glob[j], posed[j] = local_rotations[j], rest[j]
        else:
            glob[j] = glob[p] @ local_rotations[j]
            posed[j] = posed[p] + glob[p] @ (rest[j] - rest[p])
    t = posed - np.einsum("jab,jb->ja", glob, rest)
    return posed, np.concatenate([glob, t[:, :, None]], axis=2)
