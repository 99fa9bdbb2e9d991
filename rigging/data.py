"""Training samples for the rigger: posed procedural creatures (or RigNet `rig_info` rigs) as
normalised surface points + normals, BFS-ordered joints with parents, and per-point skin weights.

Axes: B batch, N points, J joints (padded to the batch's maximum).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genmotion.rigging.config import RigDataConfig
from genmotion.rigging.creatures import Creature, random_creature
from genmotion.rigging.geometry import analytic_skin, linear_blend, normalisation, sample_capsules
from genmotion.rigging.meshio import farthest_point_order
from genmotion.rigging.rignet import RigInfo, read_rig_info
from genmotion.rigging.skeleton import Skeleton, bfs_order, pose_skeleton, random_rotations, reorder

__all__ = ["RigBatches", "RigSample", "collate", "creature_sample", "rig_sample"]


@dataclass(frozen=True)
class RigSample:
    """One training example in normalised space: points (N, 6) xyz+normal, joints (J, 3) in BFS order,
    parents (J,) (-1 at joint 0), skin (N, J) and the body plan."""

    points: np.ndarray
    joints: np.ndarray
    parents: np.ndarray
    skin: np.ndarray
    plan: str


def rig_sample(
    points: np.ndarray,
    normals: np.ndarray,
    skeleton: Skeleton,
    skin: np.ndarray,
    plan: str,
    rng: np.random.Generator | None,
) -> RigSample:
    """Normalise into [-1, 1] (bounding-box middle, max |coord|), put the points in farthest-point order and
    BFS-order the joints (siblings shuffled with `rng`, else in index order)."""
    fps = farthest_point_order(points)
    points, normals, skin = points[fps], normals[fps], skin[fps]
    centre, scale = normalisation(points)
    order = bfs_order(skeleton, rng)
    sk = reorder(skeleton, order)
    xyz = (points - centre) / scale
    return RigSample(
        points=np.concatenate([xyz, normals], axis=1).astype(np.float32),
        joints=((sk.joints - centre) / scale).astype(np.float32),
        parents=sk.parents,
        skin=skin[:, order].astype(np.float32),
        plan=plan,
    )


def creature_sample(creature: Creature, cfg: RigDataConfig, rng: np.random.Generator, pose: bool = True) -> RigSample:
    """Sample the creature's surface, skin it analytically and (with probability) pose it by LBS."""
    points, normals = sample_capsules(creature, cfg.num_points, rng)
    skin = analytic_skin(creature, points)
    sk = creature.skeleton
    if pose and rng.random() < cfg.pose_probability:
        R = random_rotations(sk.num_joints, cfg.pose_degrees, rng)
        joints, transforms = pose_skeleton(sk, R)
        points, moved = linear_blend(points, skin, transforms, normals)
        assert moved is not None
        normals = moved
        sk = Skeleton(joints, sk.parents)
    return rig_sample(points, normals, sk, skin, creature.plan, rng if cfg.shuffle_siblings else None)


def collate(samples: list[RigSample], skin_points: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Stack samples, padding joints to the longest skeleton. Keys: points (B, N, 6), joints (B, J, 3),
    parents (B, J) (0 where padded), num_joints (B,), skin_index (B, P) point ids and skin (B, P, J)."""
    B, J = len(samples), max(len(s.parents) for s in samples)
    N = samples[0].points.shape[0]
    joints = np.zeros((B, J, 3), np.float32)
    parents = np.zeros((B, J), np.int64)
    skin = np.zeros((B, skin_points, J), np.float32)
    index = np.zeros((B, skin_points), np.int64)
    for b, s in enumerate(samples):
        n = len(s.parents)
        joints[b, :n], parents[b, :n] = s.joints, np.maximum(s.parents, 0)
        index[b] = rng.choice(N, size=skin_points, replace=False)
        skin[b, :, :n] = s.skin[index[b]]
    return {
        "points": torch.from_numpy(np.stack([s.points for s in samples])),
        "joints": torch.from_numpy(joints),
        "parents": torch.from_numpy(parents),
        "num_joints": torch.tensor([len(s.parents) for s in samples]),
        "skin_index": torch.from_numpy(index),
        "skin": torch.from_numpy(skin),
    }


def _rignet_samples(cfg: RigDataConfig) -> list[tuple[np.ndarray, np.ndarray, RigInfo]]:
    """(vertices, faces, rig) of every <id>.obj with a matching <id>.txt rig_info under `cfg.root`."""
    import trimesh

    out = []
    for txt in sorted(Path(str(cfg.root)).glob("*.txt")):
        obj = txt.with_suffix(".obj")
        if obj.is_file():
            mesh: Any = trimesh.load(obj, process=False, force="mesh")
            out.append((np.asarray(mesh.vertices), np.asarray(mesh.faces), read_rig_info(txt.read_text())))
    if not out:
        raise ValueError(f"no <id>.obj + <id>.txt pairs under {cfg.root}")
    return out


def _mesh_sample(
    verts: np.ndarray, faces: np.ndarray, rig: RigInfo, cfg: RigDataConfig, rng: np.random.Generator
) -> RigSample:
    """Surface samples of a rigged mesh; each sample takes the skin of its face's first vertex."""
    import trimesh

    mesh = trimesh.Trimesh(verts, faces, process=False)
    pts, face = trimesh.sample.sample_surface(mesh, cfg.num_points, seed=int(rng.integers(2**31)))
    skin = rig.skin_matrix(len(verts))[faces[face, 0]]
    return rig_sample(
        np.asarray(pts),
        np.asarray(mesh.face_normals)[face],
        rig.skeleton,
        skin,
        "rignet",
        rng if cfg.shuffle_siblings else None,
    )


class RigBatches(torch.utils.data.IterableDataset):
    """Endless training batches of this process (its own seed): creatures of the training plans, or RigNet rigs."""

    def __init__(self, cfg: RigDataConfig, batch_size: int, seed: int) -> None:
        super().__init__()
        self.cfg, self.batch_size, self.seed = cfg, batch_size, seed

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, 0 if worker is None else worker.id])
        cfg = self.cfg
        rigs = _rignet_samples(cfg) if cfg.source == "rignet" else []
        while True:
            samples: list[RigSample] = []
            while len(samples) < self.batch_size:
                if rigs:
                    s = _mesh_sample(*rigs[int(rng.integers(len(rigs)))], cfg, rng)
                else:
                    plan = cfg.plans[int(rng.integers(len(cfg.plans)))]
                    s = creature_sample(random_creature(plan, rng), cfg, rng)
                if len(s.parents) <= cfg.max_joints:
                    samples.append(s)
            yield collate(samples, cfg.skin_points, rng)
