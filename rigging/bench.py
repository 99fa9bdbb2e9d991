"""`genmotion bench rig`: the rigger scored per body plan on fresh posed creatures (the held-out plans
never seen in training): skeleton metrics of the sampled rig, skin metrics against the known skeleton,
the vertex error after a random pose, and seconds per mesh end to end (load an OBJ, sample, skeleton,
skin, write the GLB).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genmotion.bench.report import bar_chart, host_info, save_results, set_bench_threads
from genmotion.rigging.creatures import BODY_PLANS, random_creature
from genmotion.rigging.geometry import analytic_skin, capsule_mesh, linear_blend, normalisation
from genmotion.rigging.meshio import sample_surface, vertex_normals
from genmotion.rigging.metrics import skeleton_metrics, skin_metrics
from genmotion.rigging.model import bone_distances
from genmotion.rigging.postprocess import postprocess_skin
from genmotion.rigging.sampler import teacher_forced_skin
from genmotion.rigging.skeleton import Skeleton, bfs_order, pose_skeleton, random_rotations, reorder

__all__ = ["TARGETS", "evaluate_pipeline", "rig_timed", "run_rig_bench", "score_rig"]

log = logging.getLogger(__name__)
TOLERANCE = 0.1  # joint match distance in normalised units (Anymate's evaluate_joint threshold)
TARGETS = {"cd_j2j": 0.05, "skin_l1": 0.3, "seconds_per_mesh": 3.0}


def _case(plan: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, Skeleton, np.ndarray]:
    """A posed creature mesh: vertices (V, 3), faces, its BFS skeleton and per-vertex skin (V, J)."""
    creature = random_creature(plan, rng)
    V, F = capsule_mesh(creature)
    skin = analytic_skin(creature, V)
    sk = creature.skeleton
    joints, transforms = pose_skeleton(sk, random_rotations(sk.num_joints, 30.0, rng))
    V, _ = linear_blend(V, skin, transforms)
    order = bfs_order(Skeleton(joints, sk.parents))
    return V, F, reorder(Skeleton(joints, sk.parents), order), skin[:, order]


def _score(
    pipe: Any,
    V: np.ndarray,
    F: np.ndarray,
    gt: Skeleton,
    skin: np.ndarray,
    rng: np.random.Generator,
    seed: int,
    folder: Path,
) -> dict[str, float]:
    result, seconds = rig_timed(pipe, V, F, seed, folder)
    out = score_rig(pipe, result, V, F, gt, skin, rng)
    out["seconds"] = seconds
    return out


def rig_timed(pipe: Any, V: np.ndarray, F: np.ndarray, seed: int, folder: Path) -> tuple[Any, float]:
    """Rig a mesh end to end as a user does (write an OBJ, load it, rig, write the GLB): (result, seconds)."""
    import trimesh

    from genmotion.rigging.meshio import load_mesh

    obj = folder / "mesh.obj"
    trimesh.Trimesh(V, F, process=False).export(obj)
    start = time.perf_counter()
    result = pipe.rig(load_mesh(obj), seed=seed)
    result.save(folder / "rig.glb")
    return result, time.perf_counter() - start


def score_rig(
    pipe: Any, result: Any, V: np.ndarray, F: np.ndarray, gt: Skeleton, skin: np.ndarray, rng: np.random.Generator
) -> dict[str, float]:
    """Skeleton metrics of `result` against the true BFS skeleton `gt` and skin metrics (teacher-forced on the
    true skeleton, when the model can hold that many joints), in the mesh's normalised units."""
    centre, scale = normalisation(V)
    pred = Skeleton((result.joints - centre) / scale, result.parents)
    gts = Skeleton((gt.joints - centre) / scale, gt.parents)
    out = skeleton_metrics(pred, gts, TOLERANCE)
    if gts.num_joints <= pipe.config.max_joints:
        out.update(_skin_scores(pipe, V, F, gts, skin, centre, scale, rng))
    return out


def _skin_scores(
    pipe: Any,
    V: np.ndarray,
    F: np.ndarray,
    gts: Skeleton,
    skin: np.ndarray,
    centre: np.ndarray,
    scale: float,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Skin metrics against the known skeleton (teacher-forced), post-processed as released, and the vertex
    error after a random pose deformed with the predicted vs the true weights. For scale: `skin_l1_raw`
    (before post-processing), `skin_l1_floor` (the true weights through the same post-processing) and
    `skin_l1_nearest_bone` (softmax of -(excess distance to each joint's bones) / 0.02, post-processed)."""
    points = torch.tensor(np.concatenate([(V - centre) / scale, vertex_normals(V, F)], 1), dtype=pipe.dtype)
    pts, nrm = sample_surface(V, F, pipe.config.num_points, rng)  # the shape input, as the pipeline samples it
    shape = torch.tensor(np.concatenate([(pts - centre) / scale, nrm], 1), dtype=pipe.dtype)
    w = teacher_forced_skin(
        pipe.model, shape, torch.tensor(gts.joints, dtype=pipe.dtype), torch.tensor(gts.parents), points
    ).numpy()
    raw = w
    w = postprocess_skin(w, F, pipe.sampling.skin)
    out = skin_metrics(w, skin)
    out["skin_l1_raw"] = skin_metrics(raw, skin)["skin_l1"]
    out["skin_l1_floor"] = skin_metrics(postprocess_skin(skin, F, pipe.sampling.skin), skin)["skin_l1"]
    par = torch.tensor(gts.parents)
    d = bone_distances(points[None, :, :3].float(), torch.tensor(gts.joints)[None].float(), par[None], (par >= 0)[None])
    near = torch.softmax(-(d[0] - d[0].amin(-1, keepdim=True)) / 0.02, dim=-1).double().numpy()
    out["skin_l1_nearest_bone"] = skin_metrics(postprocess_skin(near, F, pipe.sampling.skin), skin)["skin_l1"]
    _, T = pose_skeleton(gts, random_rotations(gts.num_joints, 30.0, rng))
    a, _ = linear_blend((V - centre) / scale, skin, T)
    b, _ = linear_blend((V - centre) / scale, w, T)
    out["deform_error"] = float(np.linalg.norm(a - b, axis=1).mean())
    return out


def evaluate_pipeline(pipe: Any, plans: list[str], meshes: int, seed: int = 7) -> dict[str, dict[str, float]]:
    """Mean metrics per body plan over `meshes` fresh posed creatures each."""
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for plan in plans:
            rng = np.random.default_rng([seed, sorted(BODY_PLANS).index(plan)])
            rows = [_score(pipe, *_case(plan, rng), rng, i, Path(tmp)) for i in range(meshes)]
            keys = sorted({k for r in rows for k in r})
            out[plan] = {k: _nanmean([r.get(k, np.nan) for r in rows]) for k in keys}
            out[plan]["seconds_median"] = float(np.median([r["seconds"] for r in rows]))
            log.info("%s: %s", plan, {k: round(v, 3) for k, v in out[plan].items()})
    return out


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _pool(per_plan: dict[str, dict[str, float]], plans: list[str]) -> dict[str, float]:
    keys = per_plan[plans[0]].keys()
    return {k: _nanmean([per_plan[p][k] for p in plans]) for k in keys}


def run_rig_bench(
    json_path: str | Path,
    plot: str | Path | None,
    *,
    ckpt: str,
    compare: str | None,
    meshes: int,
    threads: int,
    plans: list[str] | None = None,
    assets: list[str] | None = None,
    previews: Path | None = None,
) -> dict[str, Any]:
    """Score `ckpt` on every body plan (or `plans`; [] for none) and `compare` on the held-out ones, and `ckpt`
    on the real `assets` (`meshes` seeds each, previews into `previews`); write JSON (+ a chart)."""
    import genmotion

    set_bench_threads(threads)
    results: dict[str, Any] = {
        "setup": {
            **host_info(),
            "meshes_per_plan": meshes,
            "tolerance": TOLERANCE,
            "bone_step": 0.005,
            "influence_threshold": 0.068,
            "pose_degrees": 30.0,
        }
    }
    every = sorted(BODY_PLANS) if plans is None else plans
    if every:
        _creature_sections(results, ckpt, compare, meshes, every)
    if assets:
        from genmotion.rigging.bench_assets import evaluate_assets, measurable

        pipe = genmotion.load(ckpt) if measurable(assets) else None  # no model load when nothing is installed
        results["real_assets"] = {
            "model": ckpt,
            "weights_sha256": _weights_digest(ckpt),
            "runs_per_asset": meshes,
            "note": "out of distribution: real humans and robots, not procedural creatures",
            "assets": evaluate_assets(pipe, assets, meshes, previews),
        }
    save_results(results, json_path, plot, _plot)
    return results


def _weights_digest(ckpt: str) -> str:
    """The first 16 hex digits of the checkpoint's model.safetensors SHA-256: which weights were measured."""
    import hashlib

    from genmotion.registry import resolve

    return hashlib.sha256((Path(resolve(ckpt)) / "model.safetensors").read_bytes()).hexdigest()[:16]


def _creature_sections(results: dict[str, Any], ckpt: str, compare: str | None, meshes: int, every: list[str]) -> None:
    import genmotion
    from genmotion.checkpoint import read_checkpoint_config
    from genmotion.registry import resolve

    for name in [ckpt] + ([compare] if compare else []):
        held = list(read_checkpoint_config(resolve(name)).get("held_out", []))
        pipe = genmotion.load(name)
        # the comparison (e.g. a regression head) is scored on the main model's held-out plans only
        chosen = every if name == ckpt else results[ckpt]["held_out_plans"] or every
        per_plan = evaluate_pipeline(pipe, chosen, meshes)
        held = [p for p in held if p in chosen]
        train_plans = [p for p in chosen if p not in held]
        entry = {
            "position_head": pipe.config.position_head,
            "held_out_plans": held,
            "per_plan": per_plan,
            "held_out": _pool(per_plan, held) if held else {},
            "in_distribution": _pool(per_plan, train_plans) if train_plans else {},
        }
        results[name] = entry
    main = results[ckpt]["held_out"] or results[ckpt]["in_distribution"]
    seconds = max(v["seconds_median"] for v in results[ckpt]["per_plan"].values())
    results["targets"] = {
        "cd_j2j_held_out": _verdict(main.get("cd_j2j"), TARGETS["cd_j2j"]),
        "skin_l1_held_out": _verdict(main.get("skin_l1"), TARGETS["skin_l1"]),
        "seconds_per_mesh_worst_plan_median": _verdict(seconds, TARGETS["seconds_per_mesh"]),
    }
    if compare:
        a, b = results[ckpt]["held_out"], results[compare]["held_out"]
        if a and b:
            results["targets"]["diffusion_beats_regression_cd_j2j"] = {
                "value": {ckpt: a["cd_j2j"], compare: b["cd_j2j"]},
                "met": a["cd_j2j"] < b["cd_j2j"],
            }


def _verdict(value: float | None, target: float) -> dict[str, Any]:
    """Target, value and whether value <= target; a metric no mesh could score (e.g. skin metrics when every
    creature has more joints than the model can emit) is None, not met."""
    if value is None or not np.isfinite(value):
        return {"target": target, "value": None, "met": False}
    return {"target": target, "value": value, "met": value <= target}


def _plot(results: dict[str, Any], path: str | Path) -> None:
    names = [k for k in results if k not in ("setup", "targets", "real_assets")]
    panels = []
    for metric in ("cd_j2j", "cd_b2b", "recall", "parent_accuracy", "skin_l1", "seconds_median"):
        bars = {
            f"{results[n]['position_head']} {p}": float(np.nan_to_num(v.get(metric, np.nan)))
            for n in names
            for p, v in results[n]["per_plan"].items()
        }
        if bars:
            held = ", ".join(results[names[0]]["held_out_plans"])
            panels.append((f"{metric} per body plan (held out: {held})", bars))
        real = {a: v for a, v in results.get("real_assets", {}).get("assets", {}).items() if metric in v}
        if real:
            bars = {f"real {a}": float(np.nan_to_num(v[metric])) for a, v in real.items()}
            panels.append((f"{metric} per real asset (out of distribution)", bars))
    bar_chart(panels, path, label_width=280)
