"""`genmotion rig` on a tiny checkpoint: the files it writes, and one clear line with exit 2 / 3 and no
file left behind for bad meshes, extensions and outputs."""

import numpy as np
import pygltflib
import pytest
import trimesh

from genmotion.cli.app import main


def _rig(capsys, *args):
    code = main(["rig", *map(str, args)])
    return code, capsys.readouterr()


def test_rig_writes_glb_bvh_rignet_and_preview(tmp_path, obj_file, tiny_ckpt, capsys):
    out, png = tmp_path / "out.glb", tmp_path / "preview.png"
    code, io = _rig(capsys, obj_file, "-o", out, "--ckpt", tiny_ckpt, "--seed", 1, "--preview", png)
    assert code == 0, io.err
    assert "wrote" in io.out and out.is_file() and png.is_file()
    assert len(pygltflib.GLTF2().load(str(out)).skins) == 1
    for name, fmt in (("out.bvh", "bvh"), ("out.txt", "rignet")):
        code, io = _rig(
            capsys, obj_file, "-o", tmp_path / name, "--format", fmt, "--ckpt", tiny_ckpt, "--max-joints", 4
        )
        assert code == 0, io.err
    assert (tmp_path / "out.bvh").read_text().startswith("HIERARCHY")
    assert (tmp_path / "out.txt").read_text().startswith("joints root")


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "case, code",
    [
        ("empty", 3),
        ("points", 3),
        ("nan", 3),
        ("huge", 3),
        ("extension", 2),
        ("missing", 3),
        ("out_ext", 2),
        ("out_dir", 3),
        ("bad_format", 2),
    ],
)
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, obj_file, tiny_ckpt, capsys, case, code):
    out = tmp_path / "out" / "rig.glb" if case == "out_dir" else tmp_path / "rig.glb"
    mesh, extra = obj_file, []
    if case == "empty":
        mesh = _write(tmp_path / "empty.obj", "# nothing\n")
    elif case == "points":
        mesh = tmp_path / "points.ply"
        trimesh.PointCloud(np.random.default_rng(0).random((50, 3))).export(mesh)
    elif case == "nan":
        mesh = _write(tmp_path / "nan.obj", "v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n")
    elif case == "huge":
        extra = ["--max-faces", "10"]  # the same check a 2-million-face mesh meets at the default limit
    elif case == "extension":
        mesh = _write(tmp_path / "mesh.xyz", "0 0 0\n")
    elif case == "missing":
        mesh = tmp_path / "nope.obj"
    elif case == "out_ext":
        out = tmp_path / "rig.fbx"
    elif case == "bad_format":
        extra = ["--format", "fbx"]
    before = set(tmp_path.rglob("*"))
    got, io = _rig(capsys, mesh, "-o", out, "--ckpt", tiny_ckpt, *extra)
    assert got == code, io.err
    lines = [line for line in io.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, io.err
    assert set(tmp_path.rglob("*")) == before  # no output, no temporary left


def test_several_parts_are_rigged_together(tmp_path, tiny_ckpt, capsys):
    a = trimesh.creation.box()
    b = trimesh.creation.icosphere(subdivisions=2)
    b.apply_translation([3, 0, 0])
    mesh = tmp_path / "parts.glb"
    trimesh.Scene([a, b]).export(mesh)
    code, io = _rig(capsys, mesh, "-o", tmp_path / "rig.glb", "--ckpt", tiny_ckpt)
    assert code == 0, io.err
    n = len(a.vertices) + len(b.vertices)
    assert f"{n} vertices" in io.out


def test_bench_rig_through_the_cli(tmp_path, tiny_ckpt, capsys):
    import json

    out, png = tmp_path / "rig.json", tmp_path / "rig.png"
    args = ["--ckpt", str(tiny_ckpt), "--quick", "--plans", "snake", "--assets", "none", "--threads", "1"]
    args += ["--json", str(out)]
    assert main(["bench", "rig", *args, "--plot", str(png)]) == 0, capsys.readouterr().err
    results = json.loads(out.read_text())
    assert results["setup"]["meshes_per_plan"] == 2 and results["setup"]["threads"] == 1
    snake = results[str(tiny_ckpt)]["per_plan"]["snake"]
    assert 0 <= snake["precision"] <= 1 and snake["cd_j2j"] > 0 and png.stat().st_size > 0
    assert main(["bench", "rig", *args[:-1], str(tmp_path / "x.json"), "--plans", "dragon"]) == 2
    assert "unknown body plans" in capsys.readouterr().err and not (tmp_path / "x.json").exists()
