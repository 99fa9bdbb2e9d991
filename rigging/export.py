"""Rig files: glTF 2.0 binary (GLB) skins written with pygltflib (one root, joint nodes with local
translations, column-major inverse bind matrices, at most 4 influences per vertex that sum to 1, joint
index 0 wherever a weight is 0, the input's UVs and base-colour texture kept), BVH skeletons and RigNet
`rig_info` text. Every file is written atomically.

Axes: V vertices, F faces, J joints.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genmotion.errors import UsageError
from genmotion.io.atomic import write_bytes, write_text
from genmotion.rigging.rignet import format_rig_info
from genmotion.rigging.skeleton import Skeleton

__all__ = [
    "MeshVisual",
    "FORMATS",
    "bvh_text",
    "format_for",
    "four_influences",
    "glb_bytes",
    "joint_names",
    "visual_of",
    "write_rig",
]


@dataclass(frozen=True)
class MeshVisual:
    """What of the input's look survives: UVs (V, 2) with a base-colour texture (PNG bytes), or a colour."""

    uv: np.ndarray | None = None
    texture_png: bytes | None = None
    base_color: tuple[float, float, float, float] = (0.8, 0.8, 0.8, 1.0)


FORMATS = {".glb": "glb", ".bvh": "bvh", ".txt": "rignet"}


def format_for(path: str | Path, fmt: str | None = None) -> str:
    """The rig format of an output path (`.glb`, `.bvh`, `.txt`), checked against an explicit `fmt`."""
    suffix = Path(path).suffix.lower()
    if fmt is not None and fmt not in FORMATS.values():
        raise UsageError(f"unknown rig format {fmt!r}", fix="use glb, bvh or rignet")
    if suffix not in FORMATS:
        raise UsageError(
            f"cannot write a rig as {Path(path).name}: unknown extension {suffix or '(none)'!r}",
            fix="end the name in .glb (skinned glTF), .bvh or .txt (RigNet rig_info)",
        )
    if fmt is None:
        return FORMATS[suffix]
    if FORMATS[suffix] != fmt:
        ext = {"glb": "glb", "bvh": "bvh", "rignet": "txt"}[fmt]
        raise UsageError(f"{Path(path).name} does not fit --format {fmt}", fix=f"name it *.{ext}")
    return fmt


def joint_names(num_joints: int) -> list[str]:
    return ["root"] + [f"joint{j:02d}" for j in range(1, num_joints)]


def four_influences(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V, J) weights -> JOINTS_0 (V, 4) uint16 and WEIGHTS_0 (V, 4) float32: the 4 largest, renormalised
    to sum to 1, with joint 0 where a weight is 0."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape[1] < 4:
        w = np.concatenate([w, np.zeros((len(w), 4 - w.shape[1]))], axis=1)
    idx = np.argsort(-w, axis=1)[:, :4]
    top = np.take_along_axis(w, idx, axis=1)
    s = top.sum(axis=1, keepdims=True)
    top = np.where(s > 0, top / np.where(s > 0, s, 1.0), np.array([[1.0, 0.0, 0.0, 0.0]]))
    idx = np.where(top > 0, idx, 0)
    top32 = top.astype(np.float32)
    top32[:, 0] += np.float32(1.0) - top32.sum(axis=1)  # exact float32 sums
    return idx.astype(np.uint16), top32


class _Buffer:
    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[tuple[int, int, int | None]] = []

    def add(self, blob: bytes, target: int | None = None) -> int:
        while len(self.data) % 4:
            self.data.append(0)
        self.views.append((len(self.data), len(blob), target))
        self.data += blob
        return len(self.views) - 1


def _accessor(
    gl: object, buf: _Buffer, array: np.ndarray, kind: str, ctype: int, target: int | None, bounds: bool = False
) -> int:
    import pygltflib as g

    view = buf.add(np.ascontiguousarray(array).tobytes(), target)
    acc = g.Accessor(bufferView=view, componentType=ctype, count=len(array), type=kind)
    if bounds:
        acc.min, acc.max = array.min(axis=0).tolist(), array.max(axis=0).tolist()
    gl.accessors.append(acc)  # type: ignore[attr-defined]
    return len(gl.accessors) - 1  # type: ignore[attr-defined]


def glb_bytes(
    vertices: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray,
    skeleton: Skeleton,
    weights: np.ndarray,
    visual: MeshVisual | None = None,
) -> bytes:
    """A GLB of the skinned mesh: node 0 the mesh (skin 0), nodes 1..J the joints (joint 0 the root)."""
    import pygltflib as g

    if skeleton.root != 0 or any(int(p) >= j for j, p in enumerate(skeleton.parents) if p >= 0):
        raise ValueError("the skeleton must have its root at 0 and parents before children (BFS order)")
    visual = visual or MeshVisual()
    gl, buf = g.GLTF2(), _Buffer()
    f32, u16, u32 = g.FLOAT, g.UNSIGNED_SHORT, g.UNSIGNED_INT
    joints_u16, weights_f32 = four_influences(weights)
    attrs = g.Attributes(
        POSITION=_accessor(gl, buf, vertices.astype(np.float32), g.VEC3, f32, g.ARRAY_BUFFER, bounds=True),
        NORMAL=_accessor(gl, buf, normals.astype(np.float32), g.VEC3, f32, g.ARRAY_BUFFER),
        JOINTS_0=_accessor(gl, buf, joints_u16, g.VEC4, u16, g.ARRAY_BUFFER),
        WEIGHTS_0=_accessor(gl, buf, weights_f32, g.VEC4, f32, g.ARRAY_BUFFER),
    )
    if visual.uv is not None:
        attrs.TEXCOORD_0 = _accessor(gl, buf, visual.uv.astype(np.float32), g.VEC2, f32, g.ARRAY_BUFFER)
    indices = _accessor(gl, buf, faces.astype(np.uint32).reshape(-1), g.SCALAR, u32, g.ELEMENT_ARRAY_BUFFER)
    pbr = g.PbrMetallicRoughness(baseColorFactor=list(visual.base_color), metallicFactor=0.0, roughnessFactor=0.9)
    if visual.texture_png is not None and visual.uv is not None:
        gl.images.append(g.Image(bufferView=buf.add(visual.texture_png), mimeType="image/png"))
        gl.samplers.append(g.Sampler())
        gl.textures.append(g.Texture(source=0, sampler=0))
        pbr.baseColorTexture, pbr.baseColorFactor = g.TextureInfo(index=0), [1.0, 1.0, 1.0, 1.0]
    gl.materials.append(g.Material(pbrMetallicRoughness=pbr, name="material"))
    gl.meshes.append(g.Mesh(primitives=[g.Primitive(attributes=attrs, indices=indices, material=0)], name="mesh"))
    J = skeleton.num_joints
    pos = np.asarray(skeleton.joints, dtype=np.float64)
    ibm = np.tile(np.eye(4), (J, 1, 1))
    ibm[:, :3, 3] = -pos  # inverse of the joint's rest translation
    ibm_acc = _accessor(gl, buf, ibm.transpose(0, 2, 1).astype(np.float32), g.MAT4, f32, None)  # column-major
    gl.nodes.append(g.Node(mesh=0, skin=0, name="mesh"))
    kids = skeleton.children()
    for j, name in enumerate(joint_names(J)):
        p = int(skeleton.parents[j])
        local = pos[j] - (pos[p] if p >= 0 else 0.0)
        gl.nodes.append(g.Node(name=name, translation=local.tolist(), children=[1 + c for c in kids[j]] or []))
    gl.skins.append(g.Skin(joints=list(range(1, J + 1)), inverseBindMatrices=ibm_acc, skeleton=1, name="armature"))
    gl.scenes.append(g.Scene(nodes=[0, 1]))
    gl.scene = 0
    gl.bufferViews = [g.BufferView(buffer=0, byteOffset=o, byteLength=n, target=t) for o, n, t in buf.views]
    gl.buffers.append(g.Buffer(byteLength=len(buf.data)))
    gl.set_binary_blob(bytes(buf.data))
    return b"".join(gl.save_to_bytes())


def bvh_text(skeleton: Skeleton, names: Sequence[str] | None = None, frame_time: float = 1 / 30) -> str:
    """A BVH hierarchy (root OFFSET = its position, else child - parent; 6 channels at the root, 3 rotations
    elsewhere) with one rest frame of zeros."""
    names = list(names) if names is not None else joint_names(skeleton.num_joints)
    pos, kids = np.asarray(skeleton.joints, dtype=np.float64), skeleton.children()
    lines: list[str] = ["HIERARCHY"]
    channels = 0

    def emit(j: int, depth: int) -> None:
        nonlocal channels
        pad, p = "  " * depth, int(skeleton.parents[j])
        off = pos[j] - (pos[p] if p >= 0 else 0.0)
        lines.append(f"{pad}{'ROOT' if p < 0 else 'JOINT'} {names[j]}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        if p < 0:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
            channels += 6
        else:
            lines.append(f"{pad}  CHANNELS 3 Zrotation Xrotation Yrotation")
            channels += 3
        for c in kids[j]:
            emit(c, depth + 1)
        if not kids[j]:
            lines.extend([f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET 0.000000 0.000000 0.000000", pad + "  }"])
        lines.append(pad + "}")

    emit(skeleton.root, 0)
    frame = ["0.000000"] * channels  # the rest pose: the root's OFFSET already places it
    lines += ["MOTION", "Frames: 1", f"Frame Time: {frame_time:.6f}", " ".join(frame)]
    return "\n".join(lines) + "\n"


def _png(image: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")  # type: ignore[attr-defined]
    return out.getvalue()


def write_rig(
    path: str | Path,
    fmt: str,
    vertices: np.ndarray,
    faces: np.ndarray,
    normals: np.ndarray,
    skeleton: Skeleton,
    weights: np.ndarray,
    visual: MeshVisual | None = None,
) -> Path:
    """Write the rig as `fmt` ("glb", "bvh" or "rignet") to `path`, atomically; returns the path."""
    if fmt == "glb":
        return write_bytes(path, glb_bytes(vertices, faces, normals, skeleton, weights, visual))
    if fmt == "bvh":
        return write_text(path, bvh_text(skeleton))
    if fmt == "rignet":
        return write_text(path, format_rig_info(skeleton, weights, joint_names(skeleton.num_joints)))
    raise ValueError(f"unknown rig format {fmt!r}")


def visual_of(mesh: object) -> MeshVisual:
    """The UVs and base-colour texture (or colour) of a trimesh mesh, where it has them."""
    vis = getattr(mesh, "visual", None)
    uv = getattr(vis, "uv", None)
    mat = getattr(vis, "material", None)
    image = getattr(mat, "baseColorTexture", None) or getattr(mat, "image", None)
    color = getattr(mat, "baseColorFactor", None)
    if color is None:
        color = getattr(mat, "main_color", None)
    base = (0.8, 0.8, 0.8, 1.0)
    if color is not None and len(color) >= 3:
        c = np.asarray(color, dtype=np.float64)
        c = c / 255.0 if c.max() > 1.0 else c
        base = (float(c[0]), float(c[1]), float(c[2]), float(c[3]) if len(c) > 3 else 1.0)
    uv_arr = np.asarray(uv, dtype=np.float64) if uv is not None and len(uv) else None
    if uv_arr is not None:
        uv_arr = np.column_stack([uv_arr[:, 0], 1.0 - uv_arr[:, 1]])  # trimesh flips V on load
    return MeshVisual(
        uv=uv_arr, texture_png=_png(image) if image is not None and uv_arr is not None else None, base_color=base
    )
