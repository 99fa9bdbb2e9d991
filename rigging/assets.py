"""Real rigged assets that install from the package index, read into this project's rig: the skinned and
the rigid humans of `mannequin-x`, and the humanoid and quadruped robots that `pybullet` ships as URDF
(`pybullet_data`). They are out-of-distribution checks of a rigger trained on procedural creatures.

Every asset is turned into the creatures' frame (Y up, +Z forward, X lateral) by its declared up and
forward axes, and a joint that sits exactly on its parent (a zero-length bone: the mannequin's hand
skinning joints, a URDF link fixed at its parent's origin) is merged into the parent, weights included.

Axes: V vertices, F faces, J joints.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genmotion.errors import InputError, UsageError
from genmotion.rigging.skeleton import Skeleton

__all__ = [
    "ASSETS",
    "AssetSource",
    "RigAsset",
    "asset_status",
    "canonical_rotation",
    "load_asset",
    "merge_coincident",
    "urdf_asset",
]

_AXES = {"+x": (1, 0, 0), "-x": (-1, 0, 0), "+y": (0, 1, 0), "-y": (0, -1, 0), "+z": (0, 0, 1), "-z": (0, 0, -1)}


@dataclass(frozen=True)
class RigAsset:
    """A rigged mesh: vertices (V, 3), faces (F, 3), the skeleton (J joints), skin weights (V, J) whose rows
    sum to 1, the joint names (J,) and where it came from."""

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    skeleton: Skeleton
    weights: np.ndarray
    joint_names: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class AssetSource:
    """Where an asset lives: the PyPI distribution, the import name that holds the file, the file inside it
    (a URDF, or a mannequin design), its up and forward axes, and whether its skin is rigid."""

    distribution: str
    module: str
    file: str
    up: str
    forward: str
    rigid: bool


ASSETS: dict[str, AssetSource] = {
    "mannequin-wooden": AssetSource("mannequin-x", "mannequin", "wooden", "+y", "+z", rigid=False),
    "mannequin-convex": AssetSource("mannequin-x", "mannequin", "convex", "+y", "+z", rigid=True),
    "pybullet-humanoid": AssetSource("pybullet", "pybullet_data", "humanoid/humanoid.urdf", "+y", "+x", rigid=True),
    "laikago": AssetSource("pybullet", "pybullet_data", "laikago/laikago_toes_zup.urdf", "+z", "+x", rigid=True),
    "a1": AssetSource("pybullet", "pybullet_data", "a1/a1.urdf", "+z", "+x", rigid=True),
    "mini-cheetah": AssetSource("pybullet", "pybullet_data", "mini_cheetah/mini_cheetah.urdf", "+z", "+x", rigid=True),
    "minitaur": AssetSource("pybullet", "pybullet_data", "quadruped/minitaur.urdf", "+z", "+x", rigid=True),
}


def canonical_rotation(up: str, forward: str) -> np.ndarray:
    """The rotation (3, 3) taking an asset's `up` and `forward` axes ("+z", "-x", ...) to +Y and +Z."""
    if up not in _AXES or forward not in _AXES:
        raise UsageError(f"axes must be one of {', '.join(_AXES)}, got up={up!r} forward={forward!r}")
    u, f = np.array(_AXES[up], dtype=np.float64), np.array(_AXES[forward], dtype=np.float64)
    if abs(float(u @ f)) > 0:
        raise UsageError(f"up {up} and forward {forward} must be perpendicular")
    return np.stack([np.cross(u, f), u, f])  # rows: the new X, Y, Z in the asset's frame


def merge_coincident(
    skeleton: Skeleton, weights: np.ndarray, names: tuple[str, ...], tolerance: float = 1e-6
) -> tuple[Skeleton, np.ndarray, tuple[str, ...]]:
    """Merge every joint closer than `tolerance` x the skeleton's extent to its parent into the parent (its
    weights added to the parent's, its children re-parented). Returns (skeleton, weights (V, J'), names)."""
    joints, parents = np.asarray(skeleton.joints, np.float64), np.asarray(skeleton.parents).copy()
    extent = float(np.ptp(joints, axis=0).max()) or 1.0
    target = np.arange(len(parents))
    for j in _walk(parents):
        p = int(parents[j])
        if p >= 0 and np.linalg.norm(joints[j] - joints[p]) <= tolerance * extent:
            target[j] = target[p]
        elif p >= 0:
            parents[j] = target[p]
    keep = np.flatnonzero(target == np.arange(len(parents)))
    index = np.full(len(parents), -1)
    index[keep] = np.arange(len(keep))
    w = np.zeros((len(weights), len(keep)))
    np.add.at(w.T, index[target], np.asarray(weights, np.float64).T)
    new_parents = np.where(parents[keep] < 0, -1, index[np.maximum(parents[keep], 0)])
    return Skeleton(joints[keep], new_parents.astype(np.int64)), w, tuple(names[k] for k in keep)


def _walk(parents: np.ndarray) -> list[int]:
    """Joint indices with every parent before its children."""
    from genmotion.rigging.skeleton import bfs_order

    return [int(j) for j in bfs_order(Skeleton(np.zeros((len(parents), 3)), parents))]


def _oriented(
    name: str,
    vertices: np.ndarray,
    faces: np.ndarray,
    skeleton: Skeleton,
    weights: np.ndarray,
    names: tuple[str, ...],
    rotation: np.ndarray,
    source: str,
) -> RigAsset:
    turned = Skeleton(np.asarray(skeleton.joints) @ rotation.T, skeleton.parents)
    sk, w, kept = merge_coincident(turned, weights, names)
    V = np.asarray(vertices, np.float64) @ rotation.T
    return RigAsset(name, V, np.asarray(faces, np.int64), sk, w, kept, source)


def urdf_asset(path: str | Path, up: str = "+z", forward: str = "+x", name: str | None = None) -> RigAsset:
    """A URDF robot as a rig: joints at the link origins, the link meshes, a rigid skin (URDF is Z up and
    X forward by its convention; pass the axes for a file that is not)."""
    from genmotion.rigging.urdf import read_urdf

    robot = read_urdf(path)
    weights = np.zeros((len(robot.vertices), len(robot.names)))
    weights[np.arange(len(robot.vertices)), robot.vertex_link] = 1.0
    sk = Skeleton(robot.joints, robot.parents)
    R = canonical_rotation(up, forward)
    return _oriented(name or Path(path).stem, robot.vertices, robot.faces, sk, weights, robot.names, R, str(path))


def _package_folder(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def asset_status(name: str) -> str | None:
    """None when the asset can be read here, else why not ("not installed: pip install ...")."""
    source = _source(name)
    if _package_folder(source.module) is None:
        return f"not installed: pip install {source.distribution}"
    return None


def _source(name: str) -> AssetSource:
    if name not in ASSETS:
        raise UsageError(f"unknown asset {name!r}", fix=f"use one of {', '.join(ASSETS)} or a .urdf path")
    return ASSETS[name]


def load_asset(name: str) -> RigAsset:
    """Read one asset of `ASSETS` from its installed package (`InputError` naming the pip install if absent)."""
    source = _source(name)
    missing = asset_status(name)
    if missing is not None:
        raise InputError(f"asset {name} needs {source.distribution}", why=missing, fix="install it or skip the asset")
    if source.module == "mannequin":
        from genmotion.rigging.mannequin import mannequin_rig

        V, F, sk, w, names = mannequin_rig(source.file)
        R = canonical_rotation(source.up, source.forward)
        return _oriented(name, V, F, sk, w, names, R, f"{source.distribution}: {source.file}")
    folder = _package_folder(source.module)
    assert folder is not None
    asset = urdf_asset(folder / source.file, source.up, source.forward, name)
    return RigAsset(**{**asset.__dict__, "source": f"{source.distribution}: {source.module}/{source.file}"})
