"""RigNet `rig_info` text: `joints <name> x y z`, `root <name>`, `hier <parent> <child>` and
`skin <vertex> <joint> <w> ...` lines (vertex ids in OBJ order), read and written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from genmotion.rigging.skeleton import Skeleton

__all__ = ["RigInfo", "format_rig_info", "read_rig_info"]


@dataclass(frozen=True)
class RigInfo:
    """A named skeleton and sparse skin: `skin[v]` lists (joint index, weight) pairs of vertex v."""

    names: tuple[str, ...]
    skeleton: Skeleton
    skin: dict[int, list[tuple[int, float]]]

    def skin_matrix(self, num_vertices: int) -> np.ndarray:
        """Dense weights (V, J), rows renormalised (rows without skin lines stay zero)."""
        w = np.zeros((num_vertices, len(self.names)))
        for v, pairs in self.skin.items():
            if 0 <= v < num_vertices:
                for j, x in pairs:
                    w[v, j] += x
        return w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)


def read_rig_info(text: str) -> RigInfo:
    """Parse rig_info text (the README's `joint` and the files' `joints` are both accepted)."""
    names: list[str] = []
    pos: list[list[float]] = []
    edges: list[tuple[str, str]] = []
    skin_lines: list[list[str]] = []
    root = None
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        try:
            if key in ("joints", "joint"):
                names.append(parts[1])
                pos.append([float(x) for x in parts[2:5]])
            elif key == "root":
                root = parts[1]
            elif key == "hier":
                edges.append((parts[1], parts[2]))
            elif key == "skin":
                skin_lines.append(parts[1:])
        except (IndexError, ValueError) as e:
            raise ValueError(f"rig_info line {number} is malformed: {line.strip()!r}") from e
    index = {n: i for i, n in enumerate(names)}
    if root is None or root not in index:
        raise ValueError("rig_info has no `root` line naming one of its joints")
    parents = np.full(len(names), -1, dtype=np.int64)
    for p, c in edges:
        if p not in index or c not in index:
            raise ValueError(f"rig_info hier line names an unknown joint: {p} {c}")
        parents[index[c]] = index[p]
    if parents[index[root]] != -1 or int((parents < 0).sum()) != 1:
        raise ValueError("rig_info joints do not form one tree under its root")
    skin: dict[int, list[tuple[int, float]]] = {}
    for parts in skin_lines:
        v = int(parts[0])
        skin[v] = [(index[parts[i]], float(parts[i + 1])) for i in range(1, len(parts) - 1, 2) if parts[i] in index]
    return RigInfo(tuple(names), Skeleton(np.asarray(pos, dtype=np.float64), parents), skin)


def format_rig_info(
    skeleton: Skeleton, weights: np.ndarray, names: Sequence[str] | None = None, min_weight: float = 1e-6
) -> str:
    """rig_info text of a skeleton and dense per-vertex weights (V, J)."""
    J = skeleton.num_joints
    names = list(names) if names is not None else [f"joint{j}" for j in range(J)]
    lines = [f"joints {names[j]} {x:.8f} {y:.8f} {z:.8f}" for j, (x, y, z) in enumerate(skeleton.joints)]
    lines.append(f"root {names[skeleton.root]}")
    lines += [f"hier {names[p]} {names[c]}" for p, c in skeleton.bones()]
    for v, row in enumerate(np.asarray(weights)):
        nz = np.flatnonzero(row > min_weight)
        lines.append(" ".join([f"skin {v}"] + [f"{names[j]} {row[j]:.6f}" for j in nz]))
    return "\n".join(lines) + "\n"
