"""Skin post-processing on hand-made cases, the GLB / BVH / rig_info writers read back, and the pipeline
(golden slice, stream == generate, seeds, likelihood pick, checkpoint round trip)."""

import numpy as np
import pygltflib
import pytest
import torch
import trimesh
from rigging_tiny import tiny_pipeline

from genmotion.errors import UsageError
from genmotion.rigging.config import SkinPostConfig
from genmotion.rigging.export import bvh_text, format_for, four_influences, glb_bytes
from genmotion.rigging.geometry import analytic_skin
from genmotion.rigging.meshio import cluster_simplify, vertex_normals
from genmotion.rigging.pipeline import JointChunk, RigAnythingPipeline, RigChunk
from genmotion.rigging.postprocess import limit_influences, postprocess_skin, smooth_weights, transfer_weights
from genmotion.rigging.rignet import format_rig_info, read_rig_info
from genmotion.rigging.skeleton import bfs_order, reorder

GOLDEN = {"seed": 12, "parents": [-1, 0, 0], "joints": [0.2917, 2.1682, 0.0348, -0.117, 2.6461, 0.2257]}


def test_top_k_threshold_renormalise_by_hand():
    w = np.array([[0.40, 0.25, 0.15, 0.08, 0.07, 0.05], [0.05, 0.06, 0.04, 0.03, 0.02, 0.01]])
    out = limit_influences(w, top_k=5, threshold=0.068)
    np.testing.assert_allclose(out[0], np.array([0.40, 0.25, 0.15, 0.08, 0.07, 0.0]) / 0.95)  # 6th is out of top-5
    np.testing.assert_allclose(out[1], [0, 1, 0, 0, 0, 0])  # all below the threshold: the largest stays
    cut = limit_influences(np.array([[0.5, 0.3, 0.1, 0.06, 0.04]]), top_k=5, threshold=0.068)
    np.testing.assert_allclose(cut[0], np.array([0.5, 0.3, 0.1, 0, 0]) / 0.9)


def test_smoothing_over_mesh_neighbours_by_hand():
    faces = np.array([[0, 1, 2]])  # three vertices, each the neighbour of the other two
    w = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    one = smooth_weights(w, faces, iterations=1, factor=0.35)
    # vertex 0: mean of neighbours is (0, 1) -> 1 + 0.35 (0 - 1) = 0.65
    np.testing.assert_allclose(one[0], [0.65, 0.35])
    np.testing.assert_allclose(one[1], [0.175, 0.825])  # mean of (1,0),(0,1) = (.5,.5)
    ten = postprocess_skin(w, faces, SkinPostConfig())
    np.testing.assert_allclose(ten.sum(axis=1), 1.0)
    assert ten[0, 0] < 0.5 < ten[0, 0] + 0.3  # pulled toward its neighbours, not past them
    np.testing.assert_allclose(transfer_weights(np.eye(3), ten, np.eye(3) * 1.1), ten)


def test_four_influences_normalised_and_zero_joint_where_unused():
    w = np.array([[0.5, 0.2, 0.2, 0.05, 0.05], [0.0, 0.0, 1.0, 0.0, 0.0]])
    j, x = four_influences(w)
    assert j.dtype == np.uint16 and x.dtype == np.float32
    np.testing.assert_allclose(x.sum(axis=1), 1.0, atol=1e-6)
    assert j[1].tolist() == [2, 0, 0, 0] and x[1].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert set(j[0].tolist()) <= {0, 1, 2, 3, 4} and (x[0] > 0).all()


def _rig(creature_mesh):
    creature, V, F = creature_mesh
    sk = reorder(creature.skeleton, bfs_order(creature.skeleton))
    return V, F, sk, analytic_skin(creature, V)[:, bfs_order(creature.skeleton)]


def test_glb_reads_back_with_the_structural_rules(tmp_path, creature_mesh):
    V, F, sk, w = _rig(creature_mesh)
    path = tmp_path / "rig.glb"
    path.write_bytes(glb_bytes(V, F, vertex_normals(V, F), sk, w))
    gl = pygltflib.GLTF2().load(str(path))
    (skin,) = gl.skins
    J = sk.num_joints
    assert skin.joints == list(range(1, J + 1)) and len(set(skin.joints)) == J
    children = [c for n in gl.nodes for c in (n.children or [])]
    roots = [j for j in skin.joints if j not in children]
    assert roots == [1] and gl.scenes[0].nodes == [0, 1]  # one root, in the scene
    assert len(children) == len(set(children)) == J - 1
    blob = gl.binary_blob()

    def read(index, dtype, width):
        acc = gl.accessors[index]
        view = gl.bufferViews[acc.bufferView]
        return np.frombuffer(blob, dtype, acc.count * width, view.byteOffset).reshape(acc.count, width)

    attrs = gl.meshes[0].primitives[0].attributes
    ibm = read(skin.inverseBindMatrices, np.float32, 16)
    np.testing.assert_allclose(ibm[:, 12:15], -sk.joints, atol=1e-5)  # column-major: translation last
    np.testing.assert_allclose(ibm[:, 15], 1.0)
    joints, weights = read(attrs.JOINTS_0, np.uint16, 4), read(attrs.WEIGHTS_0, np.float32, 4)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    assert (joints[weights == 0] == 0).all() and joints.max() < J
    assert (weights > 0).sum(axis=1).max() <= 4
    # local translations chain back to the global joint positions
    world = np.zeros((J, 3))
    for j in range(J):
        p = int(sk.parents[j])
        world[j] = np.asarray(gl.nodes[1 + j].translation) + (world[p] if p >= 0 else 0)
    np.testing.assert_allclose(world, sk.joints, atol=1e-6)
    mesh = trimesh.load(str(path), force="mesh")
    assert len(mesh.vertices) == len(V) and len(mesh.faces) == len(F)


def test_bvh_and_rig_info_round_trip(creature_mesh):
    V, F, sk, w = _rig(creature_mesh)
    text = bvh_text(sk)
    assert text.count("JOINT ") == sk.num_joints - 1 and text.count("ROOT ") == 1
    channels = sum(int(line.split()[1]) for line in text.splitlines() if line.strip().startswith("CHANNELS"))
    assert len(text.strip().splitlines()[-1].split()) == channels
    back = read_rig_info(format_rig_info(sk, w))
    np.testing.assert_array_equal(back.skeleton.parents, sk.parents)
    np.testing.assert_allclose(back.skeleton.joints, sk.joints, atol=1e-7)
    np.testing.assert_allclose(back.skin_matrix(len(V)), w, atol=1e-5)


def test_rig_info_reads_the_joints_spelling_and_refuses_bad_trees():
    text = "joints a 0 0 0\njoints b 0 1 0\nroot a\nhier a b\nskin 0 a 0.25 b 0.75\n"
    info = read_rig_info(text)
    assert info.names == ("a", "b") and info.skeleton.parents.tolist() == [-1, 0]
    assert info.skin_matrix(1).tolist() == [[0.25, 0.75]]
    with pytest.raises(ValueError, match="root"):
        read_rig_info("joints a 0 0 0\n")


def test_output_formats_and_cluster_simplify():
    assert format_for("x.glb") == "glb" and format_for("x.txt") == "rignet" and format_for("x.bvh", "bvh") == "bvh"
    for bad, fmt in (("x.fbx", None), ("x.glb", "bvh"), ("x.glb", "fbx")):
        with pytest.raises(UsageError):
            format_for(bad, fmt)
    sphere = trimesh.creation.icosphere(subdivisions=5)
    v, f = cluster_simplify(sphere.vertices, sphere.faces, 800)
    assert 200 < len(v) <= 1100 and f.max() < len(v)


def test_golden_slice_and_likelihood_pick(creature_mesh):
    _, V, F = creature_mesh
    r = tiny_pipeline().rig((V, F), seed=GOLDEN["seed"], num_samples=2)
    assert r.parents.tolist() == GOLDEN["parents"]
    np.testing.assert_allclose(r.joints[:2].ravel(), GOLDEN["joints"], atol=2e-3)
    assert r.chosen == int(np.argmax(r.scores)) and r.scores.shape == (2,)
    assert r.weights.shape == (len(V), r.num_joints)
    np.testing.assert_allclose(r.weights.sum(axis=1), 1.0, atol=1e-9)


def test_stream_equals_generate_and_seeds(creature_mesh):
    _, V, F = creature_mesh
    pipe = tiny_pipeline()
    chunks = list(pipe.stream((V, F), seed=3, num_samples=2))
    assert all(isinstance(c, JointChunk) for c in chunks[:-1]) and isinstance(chunks[-1], RigChunk)
    assert [c.index for c in chunks[:-1]] == list(range(len(chunks) - 1))
    a, b = pipe.collect(chunks, 0.0), pipe.generate((V, F), seed=3, num_samples=2)
    for name in ("joints", "parents", "weights", "scores"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = pipe.generate((V, F), seed=4, num_samples=2)
    assert not np.array_equal(c.joints[:1], b.joints[:1])
    with pytest.raises(UsageError):
        pipe.rig((V, F), max_joints=100)


def test_checkpoint_round_trip(tmp_path, creature_mesh):
    _, V, F = creature_mesh
    first = tiny_pipeline()
    first.save_pretrained(tmp_path / "a")
    a = RigAnythingPipeline.from_pretrained(tmp_path / "a")
    a.save_pretrained(tmp_path / "b")
    b = RigAnythingPipeline.from_pretrained(tmp_path / "b")  # bf16 weights: the second trip is exact
    assert a.config == first.config and a.sampling == first.sampling
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    ra, rb = a.rig((V, F), seed=1), b.rig((V, F), seed=1)
    np.testing.assert_array_equal(ra.joints, rb.joints)


def test_uvs_and_texture_survive_the_glb(tmp_path):
    from PIL import Image

    box = trimesh.creation.box()
    box = trimesh.Trimesh(box.vertices[box.faces].reshape(-1, 3), np.arange(36).reshape(12, 3), process=False)
    uv = np.random.default_rng(0).random((36, 2))
    tex = Image.new("RGB", (8, 8), (200, 40, 40))
    box.visual = trimesh.visual.TextureVisuals(uv=uv, image=tex)
    src = tmp_path / "box.glb"
    box.export(src)
    rig = tiny_pipeline().rig(str(src), seed=0)
    rig.save(tmp_path / "rig.glb")
    gl = pygltflib.GLTF2().load(str(tmp_path / "rig.glb"))
    assert gl.meshes[0].primitives[0].attributes.TEXCOORD_0 is not None
    assert len(gl.images) == 1 and gl.materials[0].pbrMetallicRoughness.baseColorTexture.index == 0
    back = trimesh.load(str(tmp_path / "rig.glb"), force="mesh")
    np.testing.assert_allclose(
        np.asarray(back.visual.uv), np.asarray(trimesh.load(str(src), force="mesh").visual.uv), atol=1e-6
    )


def test_clearance_of_a_new_joint_from_the_bones_drawn_so_far():
    from genmotion.rigging.config import RigSamplingConfig
    from genmotion.rigging.sampler import _JointDecoder

    pipe = tiny_pipeline()
    dec = _JointDecoder(pipe.model, None, torch.zeros(1, 8, 6), RigSamplingConfig(), 8)  # type: ignore[arg-type]
    for xyz, parent in (((0.0, 0.0, 0.0), 0), ((0.0, 1.0, 0.0), 0), ((1.0, 1.0, 0.0), 1)):
        dec.xyz.append(torch.tensor([xyz]))
        dec.parents.append(torch.tensor([parent]))
    clear = [
        float(dec._clearance(torch.tensor([p]), torch.tensor([a]), dec._bones()))
        for p, a in (((0.5, 1.02, 0.0), 2), ((0.0, 0.5, 0.3), 1), ((0.0, 0.0, 0.01), 0), ((0.0, 0.0, 0.01), 1))
    ]
    np.testing.assert_allclose(clear[:2], [0.02, 0.3], atol=1e-6)  # on the bone 1 -> 2; 0.3 off the bone 0 -> 1
    assert clear[2] == float("inf")  # at the root, grown from the root: a stop step's position
    np.testing.assert_allclose(clear[3], 0.01, atol=1e-6)  # at the root from another joint: a duplicate


def test_redrawn_duplicates_keep_a_valid_rig(creature_mesh):
    import dataclasses

    _, V, F = creature_mesh
    pipe = tiny_pipeline()
    plain = pipe.rig((V, F), seed=5)
    pipe.sampling = dataclasses.replace(pipe.sampling, redraw_duplicates=3, duplicate_radius=10.0)  # every draw
    r = pipe.rig((V, F), seed=5)
    assert r.parents[0] == -1 and all(0 <= p < j for j, p in enumerate(r.parents[1:], 1))
    np.testing.assert_allclose(r.weights.sum(axis=1), 1.0, atol=1e-9)
    assert len(plain.joints) >= 3 and not np.array_equal(plain.joints, r.joints)  # joint 2 on: drawn again


def test_direction_classes_through_the_pipeline_and_a_checkpoint(tmp_path, creature_mesh):
    import dataclasses

    from genmotion.rigging.model import RigAnything
    from genmotion.rigging.pipeline import RigAnythingPipeline

    _, V, F = creature_mesh
    base = tiny_pipeline()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = RigAnything(dataclasses.replace(base.config, direction_bins=8))
    torch.nn.init.normal_(model.direction_embed.weight)
    RigAnythingPipeline(model, base.sampling).save_pretrained(tmp_path / "d")
    a = RigAnythingPipeline.from_pretrained(tmp_path / "d")
    assert a.config.direction_bins == 8
    ra, rb = a.rig((V, F), seed=2), a.rig((V, F), seed=2)
    np.testing.assert_array_equal(ra.joints, rb.joints)
    assert ra.parents[0] == -1 and ra.weights.shape == (len(V), ra.num_joints)
