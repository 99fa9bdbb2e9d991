"""The `mannequin-x` humans as rigs, read as the package builds them: the rest mesh and joint positions
from its public `Mannequin` (zero shape, flat hands, so every joint's rest rotation is the identity), and
the skin from the asset file it ships, bound by the package's own rule: the wooden design keeps each
vertex's 4 strongest of its stored influences, renormalised, and its rigid parts wholly on their joint;
the convex design is rigid, each hull on its link's joint.

Axes: V vertices, F faces, J joints, K stored influences per vertex.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genmotion.errors import InputError
from genmotion.rigging.skeleton import Skeleton

__all__ = ["mannequin_rig", "wooden_weights"]


def _asset_file(design: str) -> Path:
    from importlib.resources import files

    name = "wooden.npz" if design == "wooden" else "convex0.npz"
    path = Path(str(files("mannequin") / "assets" / name))
    if not path.is_file():
        raise InputError(f"mannequin-x ships no {name}", why="this version lays its assets out differently")
    return path


def wooden_weights(indices: np.ndarray, weights: np.ndarray, rigid: np.ndarray, num_joints: int) -> np.ndarray:
    """Dense skin (V, J) from stored influences: joint indices (V, K), weights (V, K) and the rigid joint per
    vertex (V,) (-1 where skinned). Keeps the 4 strongest, renormalised; rigid vertices go wholly to theirs."""
    k = min(4, weights.shape[1])
    strongest = np.argsort(weights, axis=1)[:, -k:]
    idx = np.take_along_axis(indices.astype(np.int64), strongest, axis=1)
    w = np.take_along_axis(weights.astype(np.float64), strongest, axis=1)
    w = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    dense = np.zeros((len(w), num_joints))
    np.add.at(dense, (np.repeat(np.arange(len(w)), k), idx.ravel()), w.ravel())
    hard = rigid >= 0
    dense[hard] = 0.0
    dense[np.flatnonzero(hard), rigid[hard].astype(np.int64)] = 1.0
    return dense


def _convex_weights(data: Any, num_vertices: int, num_joints: int) -> np.ndarray:
    dense = np.zeros((num_vertices, num_joints))
    for joint, start, count in zip(
        data["link_joint_indices"], data["link_vertex_starts"], data["link_vertex_counts"], strict=True
    ):
        dense[int(start) : int(start) + int(count), int(joint)] = 1.0
    return dense


def mannequin_rig(design: str) -> tuple[np.ndarray, np.ndarray, Skeleton, np.ndarray, tuple[str, ...]]:
    """The `design` ("wooden" or "convex") at rest: vertices (V, 3), faces (F, 3), skeleton, skin (V, J), names."""
    from mannequin import Mannequin

    lod = {"lod": 0} if design == "convex" else {}
    model = Mannequin(design, flat_hand_mean=True, **lod)  # flat hands: every rest rotation is the identity
    pose = model.rest_pose()
    transforms = np.asarray(model.joint_transforms(pose), dtype=np.float64)  # (J, 4, 4)
    vertices = np.asarray(model.vertices(pose), dtype=np.float64)
    parents = np.asarray(model.parents, dtype=np.int64)
    with np.load(_asset_file(design), allow_pickle=False) as data:
        if design == "wooden":
            stored = data["skin_joint_indices"], data["skin_weights"], data["skin_rigid_joint_indices"]
            w = wooden_weights(*stored, len(parents))
        else:
            w = _convex_weights(data, len(vertices), len(parents))
    if len(w) != len(vertices):
        raise InputError(f"mannequin-x {design}: {len(w)} skin rows for {len(vertices)} vertices")
    skeleton = Skeleton(transforms[:, :3, 3].copy(), parents)
    return vertices, np.asarray(model.faces, dtype=np.int64), skeleton, w, tuple(model.joint_names)
