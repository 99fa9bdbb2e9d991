"""Real rigged assets: the URDF reader on a hand-written three-box robot (joint positions composed through
the tree, the tree, the placed geometry, the rigid skin), its bad inputs, zero-length bones merged, the
creatures' frame, and the bench's `real_assets` section through the CLI on that robot. The packaged assets
themselves (mannequin-x, pybullet) are checked only where those optional packages are installed."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genmotion.cli.app import main
from genmotion.errors import InputError
from genmotion.rigging import assets as assets_module
from genmotion.rigging.assets import canonical_rotation, merge_coincident, urdf_asset
from genmotion.rigging.skeleton import Skeleton
from genmotion.rigging.urdf import read_urdf, rpy_matrix

HERE = Path(__file__).parent
BOX_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) / 2  # trimesh's order


@pytest.fixture
def robot(tmp_path):
    for name in ("three_boxes.urdf", "hand.obj"):
        shutil.copy(HERE / name, tmp_path / name)
    return tmp_path / "three_boxes.urdf"


def _rewrite(path: Path, old: str, new: str) -> Path:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return path


def test_urdf_joints_tree_geometry_and_rigid_skin(robot):
    r = read_urdf(robot)
    assert r.names == ("base", "arm", "hand")
    np.testing.assert_array_equal(r.parents, [-1, 0, 1])
    # the arm sits 1 above the base; the hand 1 along the arm's x, which the 90 degree yaw turns into +y
    np.testing.assert_allclose(r.joints, [[0, 0, 0], [0, 0, 1], [0, 1, 1]], atol=1e-12)
    np.testing.assert_array_equal(r.vertex_link, np.repeat([0, 1, 2], 8))
    np.testing.assert_allclose(r.vertices[:8], BOX_CORNERS * [1, 1, 0.5], atol=1e-12)
    arm = BOX_CORNERS * [1, 0.2, 0.2] + [0.5, 0, 0]  # in the arm's frame, then yawed and lifted
    np.testing.assert_allclose(
        r.vertices[8:16], arm @ rpy_matrix(np.array([0, 0, np.pi / 2])).T + [0, 0, 1], atol=1e-12
    )
    # the hand's visual (not its collision box) is the obj cube of side 0.1, scaled by 2, 0.1 above the hand
    hand = r.vertices[16:]
    np.testing.assert_allclose(hand.mean(axis=0), [0, 1, 1.1], atol=1e-12)
    np.testing.assert_allclose(np.ptp(hand, axis=0), [0.2, 0.2, 0.2], atol=1e-12)
    assert r.faces.shape == (36, 3) and r.faces.max() == 23


def test_urdf_asset_turns_into_the_creature_frame_with_a_one_hot_skin(robot):
    a = urdf_asset(robot)  # URDF: Z up, X forward -> Y up, Z forward, X = Y x Z
    np.testing.assert_allclose(a.skeleton.joints, [[0, 0, 0], [0, 1, 0], [1, 1, 0]], atol=1e-12)
    np.testing.assert_array_equal(a.skeleton.parents, [-1, 0, 1])
    assert a.weights.shape == (24, 3) and a.joint_names == ("base", "arm", "hand")
    np.testing.assert_array_equal(a.weights, np.eye(3)[np.repeat([0, 1, 2], 8)])
    np.testing.assert_allclose(a.vertices, read_urdf(robot).vertices[:, [1, 2, 0]], atol=1e-12)


def test_canonical_rotation():
    np.testing.assert_allclose(canonical_rotation("+y", "+z"), np.eye(3))
    R = canonical_rotation("+z", "+x")
    np.testing.assert_allclose(R @ [0, 0, 1], [0, 1, 0])
    np.testing.assert_allclose(R @ [1, 0, 0], [0, 0, 1])
    assert np.isclose(np.linalg.det(R), 1.0)
    with pytest.raises(Exception, match="perpendicular"):
        canonical_rotation("+z", "-z")


def test_a_link_fixed_on_its_parents_origin_is_merged_with_its_skin(robot):
    _rewrite(robot, '<origin xyz="1 0 0"/>', '<origin xyz="0 0 0"/>')
    a = urdf_asset(robot)
    assert a.joint_names == ("base", "arm") and a.weights.shape == (24, 2)
    np.testing.assert_array_equal(a.weights[:, 1], np.repeat([0, 1, 1], 8))


def test_merge_coincident_reparents_children():
    sk = Skeleton(np.array([[0, 0, 0], [0, 1, 0], [0, 1, 0], [0, 2, 0.0]]), np.array([-1, 0, 1, 2]))
    w = np.eye(4)
    merged, weights, names = merge_coincident(sk, w, ("a", "b", "c", "d"))
    np.testing.assert_array_equal(merged.parents, [-1, 0, 1])
    np.testing.assert_allclose(merged.joints, [[0, 0, 0], [0, 1, 0], [0, 2, 0]])
    np.testing.assert_array_equal(weights, [[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]])
    assert names == ("a", "b", "d")


def test_bad_urdfs_say_what_is_wrong(robot, tmp_path):
    empty = tmp_path / "empty.urdf"
    empty.write_text('<robot name="x"></robot>')
    with pytest.raises(InputError, match="has no <link>"):
        read_urdf(empty)
    with pytest.raises(InputError, match="does not exist"):
        read_urdf(tmp_path / "nope.urdf")
    (tmp_path / "hand.obj").unlink()
    with pytest.raises(InputError, match=r"link 'hand' visual 0: mesh file .*hand.obj does not exist"):
        read_urdf(robot)
    _rewrite(robot, '<parent link="arm"/>', '<parent link="elbow"/>')
    with pytest.raises(InputError, match="joint 'wrist' has parent link 'elbow', which is not a <link>"):
        read_urdf(robot)
    _rewrite(robot, '<parent link="elbow"/>', '<parent link="hand"/>')
    with pytest.raises(InputError, match="the joints form a cycle"):
        read_urdf(robot)
    two = tmp_path / "two.urdf"
    two.write_text('<robot name="x"><link name="a"/><link name="b"/></robot>')
    with pytest.raises(InputError, match="has 2 root links"):
        read_urdf(two)
    broken = tmp_path / "broken.urdf"
    broken.write_text("<robot><link name='a'></robot>")
    with pytest.raises(InputError, match="malformed"):
        read_urdf(broken)


def test_box_with_a_bad_size(robot):
    _rewrite(robot, '<box size="1 1 0.5"/>', '<box size="1 1"/>')
    with pytest.raises(InputError, match="link 'base' visual 0 box size '1 1' is not 3 finite numbers"):
        read_urdf(robot)


def test_bench_real_assets_section_through_the_cli(tmp_path, robot, tiny_ckpt, capsys, monkeypatch):
    monkeypatch.setattr(assets_module, "_package_folder", lambda module: None)  # as on a machine without pybullet
    out, previews = tmp_path / "rig.json", tmp_path / "previews"
    args = ["bench", "rig", "--ckpt", str(tiny_ckpt), "--plans", "none", "--meshes", "1", "--threads", "1"]
    args += ["--assets", f"laikago,{robot}", "--json", str(out), "--previews", str(previews)]
    assert main(args) == 0, capsys.readouterr().err
    section = json.loads(out.read_text())["real_assets"]
    assert section["model"] == str(tiny_ckpt) and section["runs_per_asset"] == 1
    assert section["assets"]["laikago"] == {
        "status": "not installed: pip install pybullet (or pip install 'genmotion[assets]')"
    }
    boxes = section["assets"]["three_boxes"]
    assert boxes["status"] == "measured" and boxes["skin"] == "rigid" and boxes["vertices"] == 24
    assert boxes["joints_gt"] == 3 and 0 <= boxes["precision"] <= 1 and boxes["cd_j2j"] > 0
    assert 0 <= boxes["skin_l1"] <= 2 and boxes["seconds"] > 0 and np.isfinite(boxes["deform_error"])
    assert Path(boxes["preview"]).stat().st_size > 0 and (previews / "three_boxes.png").is_file()


def test_bench_asset_flags(tmp_path, tiny_ckpt, capsys):
    base = ["bench", "rig", "--ckpt", str(tiny_ckpt), "--json", str(tmp_path / "x.json")]
    assert main([*base, "--assets", "dragon"]) == 2
    assert "unknown asset 'dragon'" in capsys.readouterr().err
    assert main([*base, "--assets", str(tmp_path / "missing.urdf")]) == 3
    assert main([*base, "--plans", "none", "--assets", "none"]) == 2
    assert "measures nothing" in capsys.readouterr().err and not (tmp_path / "x.json").exists()


def test_packaged_mannequins_deform_as_the_package_does():
    """Our reading of mannequin-x (rest mesh, joints, skin) reproduces the package's own posed vertices."""
    pytest.importorskip("mannequin", reason="mannequin-x is optional (pip install 'genmotion[assets]')")
    from mannequin import Mannequin

    from genmotion.rigging.geometry import linear_blend
    from genmotion.rigging.mannequin import mannequin_rig

    for design, lod in (("wooden", {}), ("convex", {"lod": 0})):
        V, F, sk, w, names = mannequin_rig(design)
        model = Mannequin(design, flat_hand_mean=True, **lod)
        pose = model.rest_pose()
        rng = np.random.default_rng(0)
        pose["body_pose"] = rng.normal(0, 0.4, pose["body_pose"].shape).astype(np.float32)
        pose["hand_pose"] = rng.normal(0, 0.3, pose["hand_pose"].shape).astype(np.float32)
        T = np.asarray(model.joint_transforms(pose), dtype=np.float64)
        moved = T[:, :3, 3] - np.einsum("jab,jb->ja", T[:, :3, :3], sk.joints)  # rest rotations are identities
        posed, _ = linear_blend(V, w, np.concatenate([T[:, :3, :3], moved[:, :, None]], axis=2))
        np.testing.assert_allclose(posed, model.vertices(pose), atol=1e-5)
        assert len(names) == sk.num_joints == 54 and np.allclose(w.sum(axis=1), 1)


def test_packaged_pybullet_robots_read():
    pytest.importorskip("pybullet_data", reason="pybullet is optional (pip install 'genmotion[assets]')")
    from genmotion.rigging.assets import load_asset

    joints = {"pybullet-humanoid": 15, "laikago": 17, "a1": 21, "mini-cheetah": 17, "minitaur": 27}
    for name, count in joints.items():
        a = load_asset(name)
        assert a.skeleton.num_joints == count and np.isfinite(a.vertices).all()
        np.testing.assert_array_equal(a.weights.sum(axis=1), 1.0)
        y = a.skeleton.joints[:, 1]
        leaves = [j for j, kids in enumerate(a.skeleton.children()) if not kids]
        if name == "minitaur":  # its file's zero configuration holds the legs up
            assert y[leaves].min() > y[a.skeleton.root]
        else:  # upright in the creatures' frame: the feet are the lowest joints, well below the root
            assert int(np.argmin(y)) in leaves and y[a.skeleton.root] - y.min() > 0.3 * np.ptp(a.vertices[:, 1])


def test_bench_with_no_asset_installed_loads_no_model(tmp_path, tiny_ckpt, capsys, monkeypatch):
    import genmotion

    monkeypatch.setattr(assets_module, "_package_folder", lambda module: None)
    monkeypatch.setattr(genmotion, "load", lambda *a, **k: pytest.fail("the model was loaded"))
    out = tmp_path / "rig.json"
    args = ["bench", "rig", "--ckpt", str(tiny_ckpt), "--plans", "none", "--threads", "1", "--json", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    section = json.loads(out.read_text())["real_assets"]["assets"]
    assert set(section) == set(assets_module.ASSETS)
    assert all(v["status"].startswith("not installed: pip install ") for v in section.values())


def test_bench_refuses_a_urdf_without_links(tmp_path, tiny_ckpt, capsys):
    bad = tmp_path / "empty.urdf"
    bad.write_text('<robot name="empty"></robot>')
    out = tmp_path / "rig.json"
    args = ["bench", "rig", "--ckpt", str(tiny_ckpt), "--plans", "none", "--assets", str(bad), "--json", str(out)]
    assert main(args) == 3
    assert "has no <link>" in capsys.readouterr().err and not out.exists()
