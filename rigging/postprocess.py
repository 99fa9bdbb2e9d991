"""RigAnything's released skin post-processing: keep the top-k influences per vertex, drop weights below a
threshold, renormalise, smooth over mesh neighbours, and transfer the weights to every vertex of another
mesh (the original one when the rigged mesh was simplified) by nearest neighbour.

Axes: V vertices, J joints, E edges.
"""

from __future__ import annotations

import numpy as np

from genmotion.rigging.config import SkinPostConfig

__all__ = ["limit_influences", "mesh_edges", "postprocess_skin", "smooth_weights", "transfer_weights"]


def _renormalise(w: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1; an all-zero row takes its largest original entry (kept by the caller)."""
    s = w.sum(axis=1, keepdims=True)
    return np.where(s > 0, w / np.where(s > 0, s, 1.0), 0.0)


def limit_influences(weights: np.ndarray, top_k: int, threshold: float) -> np.ndarray:
    """(V, J) -> (V, J): the `top_k` largest per row, weights below `threshold` zeroed, rows renormalised.
    A row whose every weight falls below the threshold keeps its single largest one."""
    w = np.asarray(weights, dtype=np.float64)
    V, J = w.shape
    k = min(top_k, J)
    keep = np.zeros_like(w, dtype=bool)
    top = np.argpartition(-w, k - 1, axis=1)[:, :k]
    keep[np.arange(V)[:, None], top] = True
    out = np.where(keep & (w >= threshold), w, 0.0)
    empty = out.sum(axis=1) == 0
    best = w.argmax(axis=1)
    out[empty, best[empty]] = 1.0
    return _renormalise(out)


def mesh_edges(faces: np.ndarray) -> np.ndarray:
    """Unique undirected edges (E, 2) of triangles (F, 3)."""
    f = np.asarray(faces, dtype=np.int64)
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e = np.sort(e, axis=1)
    return np.unique(e, axis=0)


def smooth_weights(weights: np.ndarray, faces: np.ndarray, iterations: int, factor: float) -> np.ndarray:
    """`iterations` rounds of w <- w + factor (mean of neighbours' w - w) over mesh edges, rows renormalised
    after each round. Vertices without neighbours keep their weights."""
    w = np.asarray(weights, dtype=np.float64).copy()
    if iterations <= 0 or len(faces) == 0:
        return w
    e = mesh_edges(faces)
    V = len(w)
    deg = np.bincount(e.ravel(), minlength=V).astype(np.float64)
    for _ in range(iterations):
        acc = np.zeros_like(w)
        np.add.at(acc, e[:, 0], w[e[:, 1]])
        np.add.at(acc, e[:, 1], w[e[:, 0]])
        mean = np.where(deg[:, None] > 0, acc / np.maximum(deg, 1)[:, None], w)
        w = _renormalise(w + factor * (mean - w))
    return w


def transfer_weights(
    source_vertices: np.ndarray, source_weights: np.ndarray, target_vertices: np.ndarray
) -> np.ndarray:
    """Weights of each target vertex (T, J) = those of its nearest source vertex."""
    from scipy.spatial import cKDTree

    _, idx = cKDTree(np.asarray(source_vertices)).query(np.asarray(target_vertices), k=1)
    return np.asarray(source_weights)[idx]


def postprocess_skin(weights: np.ndarray, faces: np.ndarray, cfg: SkinPostConfig) -> np.ndarray:
    """The released order: top-k, threshold, renormalise, then mesh smoothing (V, J) -> (V, J)."""
    w = limit_influences(weights, cfg.top_k, cfg.threshold)
    return smooth_weights(w, faces, cfg.smooth_iterations, cfg.smooth_factor)
