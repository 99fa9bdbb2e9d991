"""Input meshes for the rigger: loading (obj, glb, gltf, ply, stl, off) with the checks users hit (empty,
points without faces, non-finite vertices, too many faces), several parts merged into one mesh that is
rigged as a whole, surface sampling with normals, and grid simplification for very dense meshes.

Axes: V vertices, F faces, N samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from genmotion.errors import InputError, UsageError
from genmotion.rigging.config import FARTHEST_PREFIX

__all__ = [
    "FARTHEST_PREFIX",
    "MESH_SUFFIXES",
    "cluster_simplify",
    "farthest_point_order",
    "load_mesh",
    "check_mesh",
    "sample_surface",
]

MESH_SUFFIXES = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off")
MAX_FACES = 1_000_000


def check_mesh_path(path: Path) -> None:
    """Usage and existence checks that need no mesh library."""
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise UsageError(
            f"cannot read {path.name}: unknown mesh extension {path.suffix or '(none)'!r}",
            fix=f"give one of {', '.join(MESH_SUFFIXES)}",
        )
    if not path.is_file():
        raise InputError(f"mesh {path} does not exist", fix="check the path")


def load_mesh(path: str | Path, max_faces: int = MAX_FACES) -> Any:
    """A checked `trimesh.Trimesh` from a file; the parts of a scene are merged (rigged together)."""
    import trimesh

    path = Path(path)
    check_mesh_path(path)
    try:
        loaded = trimesh.load(str(path), process=False)
    except Exception as e:  # trimesh raises many types for broken files
        raise InputError(f"cannot read mesh {path}", why=f"{type(e).__name__}: {e}", fix="re-export it") from e
    if isinstance(loaded, trimesh.Scene):
        geoms = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh)] if loaded.geometry else []
        if not geoms and loaded.geometry:
            raise InputError(f"{path} holds points but no faces", fix="give a triangle mesh, not a point cloud")
        loaded = trimesh.util.concatenate(geoms) if len(geoms) > 1 else (geoms[0] if geoms else trimesh.Trimesh())
    if isinstance(loaded, trimesh.PointCloud):
        raise InputError(f"{path} is a point cloud without faces", fix="give a triangle mesh (mesh it first)")
    return check_mesh(loaded, str(path), max_faces)


def check_mesh(mesh: Any, name: str = "the mesh", max_faces: int = MAX_FACES) -> Any:
    """Raise `InputError` for an empty mesh, one without faces, non-finite vertices or too many faces."""
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    if len(v) == 0:
        raise InputError(f"{name} is empty (no vertices)", fix="export the mesh with its geometry")
    if len(f) == 0:
        raise InputError(f"{name} has {len(v)} vertices but no faces", fix="give a triangle mesh, not a point cloud")
    if not np.isfinite(v).all():
        raise InputError(f"{name} has non-finite vertex coordinates (NaN or inf)", fix="repair or re-export it")
    if len(f) > max_faces:
        raise InputError(
            f"{name} has {len(f):,} faces, more than the {max_faces:,} this command takes",
            fix="decimate it first (e.g. Blender's Decimate modifier) or raise --max-faces",
        )
    if np.ptp(v, axis=0).max() <= 0:
        raise InputError(f"{name} has no extent (every vertex at one point)", fix="give a real mesh")
    return mesh


def farthest_point_order(xyz: np.ndarray, count: int = FARTHEST_PREFIX) -> np.ndarray:
    """A permutation (N,) of points (N, 3): the first `count` in farthest-point order from point 0 (every
    prefix covers the shape evenly; the rigger's shape tokens are centred on the first points), then the
    others in their original order."""
    n = len(xyz)
    count = min(count, n)
    order = np.zeros(count, dtype=np.int64)
    dist = np.full(n, np.inf)
    taken = np.zeros(n, dtype=bool)
    if n:
        taken[0] = True
    for i in range(1, count):
        d = xyz - xyz[order[i - 1]]
        dist = np.minimum(dist, np.einsum("ij,ij->i", d, d))
        dist[order[i - 1]] = -1.0
        order[i] = int(np.argmax(dist))
        taken[order[i]] = True
    return np.concatenate([order, np.flatnonzero(~taken)])


def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`n` area-uniform surface points (n, 3) with their faces' unit normals (n, 3), in farthest-point order."""
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]  # (F, 3, 3)
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = np.linalg.norm(cross, axis=1)
    if area.sum() <= 0:
        raise InputError("the mesh has no surface area (every face is degenerate)", fix="repair the mesh")
    face = rng.choice(len(area), size=n, p=area / area.sum())
    u, v = rng.random((2, n))
    flip = u + v > 1
    u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
    t = tri[face]
    pts = t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])
    normals = cross[face] / np.maximum(area[face], 1e-20)[:, None]
    order = farthest_point_order(pts)
    return pts[order], normals[order]


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) (zero-area neighbourhoods get +Y)."""
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = np.zeros((len(vertices), 3))
    for i in range(3):
        np.add.at(n, np.asarray(faces)[:, i], cross)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.where(norm > 0, n / np.maximum(norm, 1e-20), np.array([[0.0, 1.0, 0.0]]))


def cluster_simplify(vertices: np.ndarray, faces: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """Vertex-clustering simplification to about `target` vertices: vertices in one grid cell merge into
    their mean, faces collapsing to a point or an edge are dropped. Returns (V', 3) and (F', 3)."""
    v = np.asarray(vertices, dtype=np.float64)
    if len(v) <= target:
        return v, np.asarray(faces)
    lo, extent = v.min(axis=0), np.ptp(v, axis=0).max()
    cells = max(int(round(target ** (1 / 2) * 1.2)), 2)  # surfaces: vertex count ~ cells^2
    for _ in range(8):
        key = np.floor((v - lo) / (extent / cells + 1e-12)).astype(np.int64)
        _, label = np.unique(key, axis=0, return_inverse=True)
        label = label.ravel()
        if label.max() + 1 <= target * 1.3 or cells <= 2:
            break
        cells = max(int(cells * 0.8), 2)
    count = np.bincount(label).astype(np.float64)
    merged = np.stack([np.bincount(label, weights=v[:, i]) for i in range(3)], axis=1) / count[:, None]
    f = label[np.asarray(faces)]
    ok = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    return merged, f[ok]
