"""Geometry of the rigger: capsule bodies around bones (surface samples, union filtering, meshes),
analytic skin weights, linear blend skinning, and the [-1, 1] normalisation of RigAnything's input.

Axes: N points, J joints, B bones (a bone is named by its child joint; joint j's transform moves the
bones that start at j, so leaf joints carry no weight).
"""

from __future__ import annotations

import numpy as np

from genmotion.rigging.creatures import Creature
from genmotion.rigging.skeleton import Skeleton

__all__ = [
    "analytic_skin",
    "capsule_mesh",
    "linear_blend",
    "normalisation",
    "sample_capsules",
    "segment_distance",
]


def _segments(creature: Creature) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Capsule segments (C, 3) starts, (C, 3) ends and (C,) radii: one per bone, plus the root's blob."""
    sk = creature.skeleton
    joints, parents = np.asarray(sk.joints), np.asarray(sk.parents)
    kids = np.flatnonzero(parents >= 0)
    a = np.concatenate([joints[[sk.root]], joints[parents[kids]]])
    b = np.concatenate([joints[[sk.root]], joints[kids]])
    r = np.concatenate([creature.radii[[sk.root]], creature.radii[kids]])
    return a, b, r


def segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances (N, C) from points (N, 3) to segments a (C, 3) -> b (C, 3)."""
    ab = b - a  # (C, 3)
    ap = points[:, None, :] - a[None]  # (N, C, 3)
    denom = np.maximum((ab * ab).sum(-1), 1e-12)
    t = np.clip((ap * ab[None]).sum(-1) / denom, 0.0, 1.0)
    return np.linalg.norm(ap - t[..., None] * ab[None], axis=-1)


def _frame(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors (C, 3) orthogonal to unit axes (C, 3) and to each other."""
    helper = np.where(np.abs(axis[:, 1:2]) < 0.9, np.array([[0.0, 1.0, 0.0]]), np.array([[1.0, 0.0, 0.0]]))
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return u, np.cross(axis, u)


def sample_capsules(creature: Creature, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`n` points (n, 3) and unit normals (n, 3), area-uniform on the surface of the union of the capsules."""
    a, b, r = _segments(creature)
    length = np.linalg.norm(b - a, axis=1)
    area = 2 * np.pi * r * length + 4 * np.pi * r**2
    pts, nrm = np.zeros((0, 3)), np.zeros((0, 3))
    while len(pts) < n:
        m = 3 * n
        c = rng.choice(len(r), size=m, p=area / area.sum())
        axis = (b - a)[c] / np.maximum(length[c], 1e-9)[:, None]
        u, v = _frame(np.where(length[c, None] > 1e-9, axis, np.array([[0.0, 1.0, 0.0]])))
        cyl = rng.random(m) < (2 * np.pi * r * length / area)[c]
        theta = rng.uniform(0, 2 * np.pi, m)
        radial = np.cos(theta)[:, None] * u + np.sin(theta)[:, None] * v
        sphere = rng.normal(size=(m, 3))
        sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
        cap_centre = np.where(((sphere * axis).sum(1) > 0)[:, None], b[c], a[c])
        t = rng.random(m)[:, None]
        p = np.where(cyl[:, None], a[c] + t * (b - a)[c] + r[c, None] * radial, cap_centre + r[c, None] * sphere)
        nn = np.where(cyl[:, None], radial, sphere)
        d = segment_distance(p, a, b) - r[None]  # inside another capsule -> not on the union's surface
        d[np.arange(m), c] = 0.0
        keep = (d > -1e-6).all(axis=1)
        pts, nrm = np.concatenate([pts, p[keep]]), np.concatenate([nrm, nn[keep]])
    pick = rng.permutation(len(pts))[:n]
    return pts[pick], nrm[pick]


def analytic_skin(creature: Creature, points: np.ndarray, sharpness: float = 2.0, floor: float = 0.01) -> np.ndarray:
    """Skin weights (N, J): each bone pulls points by a Gaussian of the distance beyond its surface, owned by
    the bone's parent joint; weights below `floor` are dropped and rows renormalised."""
    sk = creature.skeleton
    parents = np.asarray(sk.parents)
    kids = np.flatnonzero(parents >= 0)
    joints = np.asarray(sk.joints)
    d = segment_distance(points, joints[parents[kids]], joints[kids])  # (N, B)
    r = creature.radii[kids][None]
    g = np.exp(-((np.maximum(d - r, 0.0) * sharpness / r) ** 2) - (d / (r * 4)) ** 2)
    w = np.zeros((len(points), sk.num_joints))
    for col, j in enumerate(parents[kids]):
        w[:, j] = np.maximum(w[:, j], g[:, col])
    w = w / np.maximum(w.sum(1, keepdims=True), 1e-12)
    w[w < floor] = 0.0
    return w / np.maximum(w.sum(1, keepdims=True), 1e-12)


def linear_blend(
    points: np.ndarray, weights: np.ndarray, transforms: np.ndarray, normals: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Linear blend skinning: points (N, 3) by weights (N, J) over joint transforms (J, 3, 4) `[R | t]`.

    Returns posed points (N, 3) and, when given, the normals moved by the blended rotations (renormalised)."""
    M = np.einsum("nj,jab->nab", weights, transforms)  # (N, 3, 4)
    posed = np.einsum("nab,nb->na", M[:, :, :3], points) + M[:, :, 3]
    if normals is None:
        return posed, None
    n = np.einsum("nab,nb->na", M[:, :, :3], normals)
    return posed, n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def normalisation(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (3,) = the points' bounding-box middle and scale = max |coordinate| after centring, so that
    (x - centre) / scale lies in [-1, 1]."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre = (lo + hi) / 2
    scale = float(np.abs(points - centre).max())
    return centre, max(scale, 1e-9)


def capsule_mesh(creature: Creature, sections: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """A triangle mesh of the capsule union: vertices (V, 3), faces (F, 3). Faces whose centre lies inside
    another capsule are dropped, so the mesh is the union's outer surface (with small seams)."""
    import trimesh

    a, b, r = _segments(creature)
    verts, faces, owner, offset = [], [], [], 0
    for i in range(len(r)):
        L = float(np.linalg.norm(b[i] - a[i]))
        m = trimesh.creation.capsule(height=max(L, 1e-4), radius=float(r[i]), count=[sections, sections])
        v = np.asarray(m.vertices) + np.array([0.0, 0.0, max(L, 1e-4) / 2])  # trimesh centres it on the origin
        axis = (b[i] - a[i]) / L if L > 1e-9 else np.array([0.0, 0.0, 1.0])
        u, w = _frame(axis[None])
        R = np.stack([u[0], w[0], axis], axis=1)
        verts.append(v @ R.T + a[i])
        faces.append(np.asarray(m.faces) + offset)
        owner.append(np.full(len(m.faces), i))
        offset += len(v)
    V, F, own = np.concatenate(verts), np.concatenate(faces), np.concatenate(owner)
    centres = V[F].mean(axis=1)
    d = segment_distance(centres, a, b) - r[None]
    d[np.arange(len(F)), own] = 0.0
    F = F[(d > -1e-3 * r.max()).all(axis=1)]
    used = np.unique(F)
    remap = np.full(len(V), -1)
    remap[used] = np.arange(len(used))
    return V[used], remap[F]


def skeleton_in(skeleton: Skeleton, centre: np.ndarray, scale: float) -> Skeleton:
    """The skeleton mapped by x -> (x - centre) / scale."""
    return Skeleton((np.asarray(skeleton.joints) - centre) / scale, np.asarray(skeleton.parents))
