"""URDF robots as rigs: the link tree read from the XML (joint origins composed from the root link), the
links' geometry placed by their world transforms into one mesh, and a rigid skin (every vertex fully on
its link's joint). Geometry is a link's visual elements, or its collision elements when it has no visual
(pybullet's humanoid ships collision shapes only); mesh files (obj, stl, ...) load through trimesh, and
box, sphere, cylinder and capsule (a pybullet extension) are built.

Axes: L links (= rig joints), V vertices, F faces.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genmotion.errors import InputError

__all__ = ["UrdfRig", "read_urdf", "rpy_matrix"]


@dataclass(frozen=True)
class UrdfRig:
    """A robot in its file's frame: link names (L,), joint positions (L, 3) at the link frames' origins,
    parents (L,) (-1 at the root link), vertices (V, 3), faces (F, 3) and each vertex's link (V,)."""

    names: tuple[str, ...]
    joints: np.ndarray
    parents: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray
    vertex_link: np.ndarray


def rpy_matrix(rpy: np.ndarray) -> np.ndarray:
    """URDF's fixed-axis roll, pitch, yaw (3,) as a rotation (3, 3): Rz(yaw) @ Ry(pitch) @ Rx(roll)."""
    r, p, y = (float(a) for a in rpy)
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _numbers(text: str | None, n: int, what: str, default: float = 0.0) -> np.ndarray:
    if text is None:
        return np.full(n, default)
    try:
        out = np.array([float(x) for x in text.split()])
    except ValueError:
        out = np.array([np.nan])
    if out.shape != (n,) or not np.isfinite(out).all():
        raise InputError(f"{what} {text!r} is not {n} finite numbers", fix="repair the URDF")
    return out


def _origin(element: ET.Element, what: str) -> np.ndarray:
    """The 4x4 transform of an element's <origin xyz rpy> (identity when absent)."""
    T = np.eye(4)
    o = element.find("origin")
    if o is not None:
        T[:3, :3] = rpy_matrix(_numbers(o.get("rpy"), 3, f"{what} origin rpy"))
        T[:3, 3] = _numbers(o.get("xyz"), 3, f"{what} origin xyz")
    return T


def _parse(path: Path) -> ET.Element:
    if not path.is_file():
        raise InputError(f"URDF {path} does not exist", fix="check the path")
    raw = path.read_bytes().rstrip(b"\x00\r\n\t ")  # some shipped files end in a NUL byte
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as e:
        raise InputError(f"cannot read URDF {path}", why=f"the XML is malformed ({e})", fix="repair the file") from e
    if root.tag != "robot":
        raise InputError(f"{path} is not a URDF", why=f"its root element is <{root.tag}>, not <robot>")
    if not root.findall("link"):
        raise InputError(f"URDF {path} has no <link>", why="a robot needs links to rig", fix="give a full URDF")
    return root


def _tree(root: ET.Element, path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Link names in tree order (root first, parents before children), parents (L,) and world transforms
    (L, 4, 4) composed from the joints' origins."""
    links = [str(link.get("name")) for link in root.findall("link")]
    if len(set(links)) != len(links):
        raise InputError(f"URDF {path} names a link twice", fix="give every <link> a unique name")
    parent_of: dict[str, tuple[str, np.ndarray]] = {}
    for joint in root.findall("joint"):
        name = joint.get("name", "?")
        p, c = joint.find("parent"), joint.find("child")
        parent, child = (p.get("link") if p is not None else None), (c.get("link") if c is not None else None)
        for end, link in (("parent", parent), ("child", child)):
            if link not in links:
                raise InputError(f"URDF {path}: joint {name!r} has {end} link {link!r}, which is not a <link>")
        if child in parent_of:
            raise InputError(f"URDF {path}: link {child!r} is the child of two joints", why="links form a tree")
        parent_of[str(child)] = (str(parent), _origin(joint, f"URDF {path.name}: joint {name!r}"))
    roots = [name for name in links if name not in parent_of]
    if len(roots) != 1:
        raise InputError(f"URDF {path} has {len(roots)} root links {roots[:4]}", why="a robot has one root link")
    kids: dict[str, list[str]] = {name: [] for name in links}
    for child in links:  # document order keeps siblings stable
        if child in parent_of:
            kids[parent_of[child][0]].append(child)
    order, world = [roots[0]], {roots[0]: np.eye(4)}
    for name in order:  # grows while iterating: a breadth-first walk
        for child in kids[name]:
            world[child] = world[name] @ parent_of[child][1]
            order.append(child)
    if len(order) != len(links):
        raise InputError(f"URDF {path}: the joints form a cycle", why="links form a tree")
    index = {name: i for i, name in enumerate(order)}
    parents = np.array([index[parent_of[n][0]] if n in parent_of else -1 for n in order], dtype=np.int64)
    return order, parents, np.stack([world[n] for n in order])


def _primitive(geometry: ET.Element, what: str) -> Any:
    """A trimesh of a box, sphere, cylinder or capsule (along z, as pybullet builds it); None when it has zero
    size (files hide a link's visual that way)."""
    import trimesh

    shape = geometry.tag
    if shape == "box":
        size = _numbers(geometry.get("size"), 3, f"{what} box size")
    else:
        size = _numbers(geometry.get("radius"), 1, f"{what} {shape} radius")
        if shape != "sphere":
            size = np.append(size, _numbers(geometry.get("length"), 1, f"{what} {shape} length"))
    if (size < 0).any():
        raise InputError(f"{what}: {shape} has a negative size {size.tolist()}", fix="give sizes >= 0")
    if size[0] == 0 or (shape != "capsule" and (size == 0).any()):  # a zero-length capsule is a sphere
        return None
    if shape == "box":
        return trimesh.creation.box(extents=size)
    if shape == "sphere":
        return trimesh.creation.icosphere(subdivisions=2, radius=float(size[0]))
    if shape == "cylinder":
        return trimesh.creation.cylinder(radius=float(size[0]), height=float(size[1]), sections=16)
    return trimesh.creation.capsule(height=float(size[1]), radius=float(size[0]), count=[12, 12])


def _geometry(element: ET.Element, folder: Path, what: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Vertices (V, 3) in the link frame and faces (F, 3) of one <visual> or <collision> (None: zero size).
    Vertices that a file repeats for its texture seams are merged."""
    from genmotion.rigging.meshio import MESH_SUFFIXES, load_mesh

    geometry = element.find("geometry")
    shapes = list(geometry) if geometry is not None else []
    if not shapes:
        raise InputError(f"{what} has no <geometry>", fix="give it a mesh, box, sphere, cylinder or capsule")
    shape = shapes[0]
    if shape.tag == "mesh":
        name = str(shape.get("filename", "")).removeprefix("package://")
        file = folder / name
        if file.suffix.lower() not in MESH_SUFFIXES:
            raise InputError(f"{what}: mesh file {file.name} is not one of {', '.join(MESH_SUFFIXES)}")
        if not file.is_file():
            raise InputError(f"{what}: mesh file {file} does not exist", fix="put the mesh next to the URDF")
        mesh = load_mesh(file)
        mesh.merge_vertices(merge_tex=True, merge_norm=True)
        scale = _numbers(shape.get("scale"), 3, f"{what} mesh scale", default=1.0)
        v, f = np.asarray(mesh.vertices, dtype=np.float64) * scale, np.asarray(mesh.faces, dtype=np.int64)
    elif shape.tag in ("box", "sphere", "cylinder", "capsule"):
        mesh = _primitive(shape, what)
        if mesh is None:
            return None
        v, f = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)
    else:
        raise InputError(f"{what}: geometry <{shape.tag}> is not supported", fix="use mesh, box, sphere or cylinder")
    T = _origin(element, what)
    return v @ T[:3, :3].T + T[:3, 3], f


def read_urdf(path: str | Path) -> UrdfRig:
    """Read a URDF robot: one rig joint per link at its world frame origin, the links' geometry placed by
    their world transforms, each vertex on its own link (rigid skin)."""
    path = Path(path)
    root = _parse(path)
    order, parents, world = _tree(root, path)
    elements = {str(link.get("name")): link for link in root.findall("link")}
    verts, faces, owner, offset = [], [], [], 0
    for i, name in enumerate(order):
        link = elements[name]
        parts = link.findall("visual") or link.findall("collision")
        for k, element in enumerate(parts):
            part = _geometry(element, path.parent, f"URDF {path.name}: link {name!r} {element.tag} {k}")
            if part is None:
                continue
            v, f = part
            verts.append(v @ world[i, :3, :3].T + world[i, :3, 3])
            faces.append(f + offset)
            owner.append(np.full(len(v), i, dtype=np.int64))
            offset += len(v)
    if not verts:
        raise InputError(f"URDF {path} has no geometry", why="no link has a <visual> or <collision>")
    return UrdfRig(
        names=tuple(order),
        joints=world[:, :3, 3].copy(),
        parents=parents,
        vertices=np.concatenate(verts),
        faces=np.concatenate(faces),
        vertex_link=np.concatenate(owner),
    )
