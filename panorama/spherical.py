"""A small ISO-BMFF (MP4) box writer that injects Google Spherical Video metadata into an H.264 MP4.

V1 (spherical-video RFC): a `uuid` box ffcc8263-f855-4a93-8814-587a02521fdd holding RDF/XML, appended to
the video `trak` (equirect only: V1 has no cubemap). V2 (spherical-video-v2 RFC): `st3d` (mono) and `sv3d`
= {`svhd`, `proj` = {`prhd`, `equi` | `cbmp`}} inside each visual sample entry, right after its codec
configuration box. When `moov` precedes `mdat` (faststart) every `stco`/`co64` chunk offset is shifted
by the growth of `moov`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from genmotion.errors import InputError

__all__ = ["Projection", "SPHERICAL_V1_UUID", "inject_spherical", "read_spherical", "spherical_v1_xml"]

Projection = Literal["equirectangular", "cubemap"]
SPHERICAL_V1_UUID = bytes.fromhex("ffcc8263f8554a938814587a02521fdd")
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"sv3d", b"proj"}
_VISUAL = {b"avc1", b"avc3", b"hvc1", b"hev1", b"vp09", b"av01", b"mp4v"}
_CODEC_CONFIG = {b"avcC", b"hvcC", b"vpcC", b"av1C", b"esds"}
_VISUAL_HEADER = 78  # SampleEntry (8) + VisualSampleEntry fields (70) before the child boxes


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, payload: bytes, version: int = 0, flags: int = 0) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags) + payload)


def _boxes(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of each box in `data`, in order."""
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
            header = 16
        elif size == 0:
            size = len(data) - pos
        if size < header or pos + size > len(data):
            raise InputError("the MP4 has a malformed box", why=f"{kind!r} at byte {pos} claims {size} bytes")
        yield kind, data[pos + header : pos + size]
        pos += size


def spherical_v1_xml(software: str = "genmotion") -> bytes:
    """The V1 RDF/XML payload for a mono equirectangular video."""
    return (
        '<?xml version="1.0"?><rdf:SphericalVideo xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns:GSpherical="http://ns.google.com/videos/1.0/spherical/">'
        "<GSpherical:Spherical>true</GSpherical:Spherical><GSpherical:Stitched>true</GSpherical:Stitched>"
        f"<GSpherical:StitchingSoftware>{software}</GSpherical:StitchingSoftware>"
        "<GSpherical:ProjectionType>equirectangular</GSpherical:ProjectionType></rdf:SphericalVideo>"
    ).encode()


def _v2_boxes(projection: Projection, software: str) -> bytes:
    st3d = _full_box(b"st3d", b"\x00")  # mono
    svhd = _full_box(b"svhd", software.encode() + b"\x00")
    prhd = _full_box(b"prhd", struct.pack(">iii", 0, 0, 0))
    if projection == "equirectangular":
        kind = _full_box(b"equi", struct.pack(">IIII", 0, 0, 0, 0))
    else:
        kind = _full_box(b"cbmp", struct.pack(">II", 0, 0))  # layout 0, no padding
    return st3d + _box(b"sv3d", svhd + _box(b"proj", prhd + kind))


class _Rewriter:
    """Rebuilds `moov` with the metadata added and chunk offsets shifted by `shift`."""

    def __init__(self, projection: Projection, software: str, shift: int) -> None:
        self.projection, self.software, self.shift = projection, software, shift
        self.sample_entries = 0

    def container(self, kind: bytes, payload: bytes) -> bytes:
        children = list(_boxes(payload))
        out = b"".join(self.child(k, p) for k, p in children)
        if kind == b"trak" and self.projection == "equirectangular" and _is_video(children):
            out += _box(b"uuid", SPHERICAL_V1_UUID + spherical_v1_xml(self.software))
        return _box(kind, out)

    def child(self, kind: bytes, payload: bytes) -> bytes:
        if kind in _CONTAINERS:
            return self.container(kind, payload)
        if kind == b"stsd":
            head, entries = payload[:8], list(_boxes(payload[8:]))
            return _box(kind, head + b"".join(self.sample_entry(k, p) for k, p in entries))
        if kind in (b"stco", b"co64") and self.shift:
            return _box(kind, _shift_offsets(kind, payload, self.shift))
        return _box(kind, payload)

    def sample_entry(self, kind: bytes, payload: bytes) -> bytes:
        if kind not in _VISUAL:
            return _box(kind, payload)
        self.sample_entries += 1
        head, children = payload[:_VISUAL_HEADER], list(_boxes(payload[_VISUAL_HEADER:]))
        children = [(k, p) for k, p in children if k not in (b"st3d", b"sv3d")]
        at = next((i + 1 for i, (k, _) in enumerate(children) if k in _CODEC_CONFIG), len(children))
        parts = [_box(k, p) for k, p in children]
        parts.insert(at, _v2_boxes(self.projection, self.software))
        return _box(kind, head + b"".join(parts))


def _is_video(children: list[tuple[bytes, bytes]]) -> bool:
    for kind, payload in children:
        if kind == b"mdia":
            for k, p in _boxes(payload):
                if k == b"hdlr" and p[8:12] == b"vide":
                    return True
    return False


def _shift_offsets(kind: bytes, payload: bytes, shift: int) -> bytes:
    head, (count,) = payload[:4], struct.unpack(">I", payload[4:8])
    fmt = f">{count}{'Q' if kind == b'co64' else 'I'}"
    size = struct.calcsize(fmt)
    offsets = struct.unpack(fmt, payload[8 : 8 + size])
    return head + payload[4:8] + struct.pack(fmt, *(o + shift for o in offsets)) + payload[8 + size :]


def inject_spherical(path: str | Path, projection: Projection = "equirectangular", software: str = "genmotion") -> None:
    """Rewrite the MP4 at `path` in place with V1 (equirect) and V2 spherical metadata in its video track."""
    p = Path(path)
    data = p.read_bytes()
    top = list(_boxes(data))
    kinds = [k for k, _ in top]
    if b"moov" not in kinds:
        raise InputError(f"{p} is not an MP4 with a movie box", fix="write it with genmotion's MP4 writer")
    moov_at = kinds.index(b"moov")
    old = _box(b"moov", top[moov_at][1])
    rewriter = _Rewriter(projection, software, 0)
    grown = rewriter.container(b"moov", top[moov_at][1])
    if rewriter.sample_entries == 0:
        raise InputError(f"{p} has no video sample entry to tag", fix="write an H.264 video first")
    mdat_after = b"mdat" in kinds[moov_at + 1 :]
    if mdat_after and len(grown) != len(old):
        grown = _Rewriter(projection, software, len(grown) - len(old)).container(b"moov", top[moov_at][1])
    out = b"".join(grown if i == moov_at else _box(k, b) for i, (k, b) in enumerate(top))
    tmp = p.with_name(p.name + ".sv.tmp")
    tmp.write_bytes(out)
    tmp.replace(p)


def read_spherical(path: str | Path) -> dict[str, str]:
    """What our own parser finds: {'v1': 'equirectangular'?, 'v2': 'equirectangular' | 'cubemap'?}."""
    found: dict[str, str] = {}

    def walk(payload: bytes) -> None:
        for kind, body in _boxes(payload):
            if kind == b"uuid" and body[:16] == SPHERICAL_V1_UUID and b"equirectangular" in body:
                found["v1"] = "equirectangular"
            elif kind in _CONTAINERS:
                walk(body)
            elif kind == b"stsd":
                for k, p in _boxes(body[8:]):
                    if k in _VISUAL:
                        walk(p[_VISUAL_HEADER:])
            elif kind in (b"equi", b"cbmp"):
                found["v2"] = "equirectangular" if kind == b"equi" else "cubemap"

    data = Path(path).read_bytes()
    for kind, body in _boxes(data):
        if kind == b"moov":
            walk(body)
    return found
