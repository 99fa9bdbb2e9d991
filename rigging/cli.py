"""`genmotion rig MESH -o out.glb` (skeleton + skin for a mesh file, as GLB, BVH or RigNet rig_info) and
`genmotion bench rig`. Thin: flags and paths are checked before any model loads (exit 2 for bad flags,
3 for bad files); torch is imported inside the command bodies.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from genmotion.cli.bench_options import BenchCkpt, BenchJson, BenchPlot, BenchQuick, BenchThreads, check_bench_flags
from genmotion.errors import InputError, UsageError

__all__ = ["register"]


def _check_output(path: Path, flag: str) -> None:
    if path.is_dir():
        raise InputError(f"{flag} {path} is a folder", fix="give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"cannot write {path}: folder {parent} does not exist", fix="create it or pick another path")
    if not os.access(parent, os.W_OK):
        raise InputError(f"cannot write {path}: folder {parent} is not writable", fix="pick another output path")


def rig(
    mesh: Path = typer.Argument(..., help="Mesh to rig (.obj, .glb, .gltf, .ply, .stl, .off)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output rig: .glb (skinned glTF), .bvh or .txt (rig_info)."),
    fmt: str | None = typer.Option(None, "--format", help="glb, bvh or rignet (default: from the -o suffix)."),
    max_joints: int = typer.Option(64, "--max-joints", help="Most joints the skeleton may have."),
    num_samples: int = typer.Option(1, "--num-samples", help="Skeletons to sample; the most likely is kept."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    preview: Path | None = typer.Option(None, "--preview", help="Also write a PNG: skeleton and skin, 3 views."),
    ckpt: str = typer.Option("riganything-toy", "--ckpt", help="Registry name or checkpoint directory."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    max_faces: int = typer.Option(1_000_000, "--max-faces", help="Refuse meshes with more faces than this."),
) -> None:
    """Rig a mesh with RigAnything: a skeleton joint by joint, then per-vertex skin weights."""
    from genmotion.rigging.export import format_for
    from genmotion.rigging.meshio import check_mesh_path

    kind = format_for(out, fmt)
    if num_samples < 1:
        raise UsageError(f"--num-samples must be >= 1, got {num_samples}")
    if not 2 <= max_joints <= 256:
        raise UsageError(f"--max-joints must be in [2, 256], got {max_joints}")
    if preview is not None and preview.suffix.lower() != ".png":
        raise UsageError(f"--preview {preview} should end in .png")
    check_mesh_path(mesh)
    _check_output(out, "-o")
    if preview is not None:
        _check_output(preview, "--preview")
    _run(mesh, out, kind, max_joints, num_samples, seed, preview, ckpt, device, max_faces)


def _run(
    mesh: Path,
    out: Path,
    kind: str,
    max_joints: int,
    num_samples: int,
    seed: int,
    preview: Path | None,
    ckpt: str,
    device: str,
    max_faces: int,
) -> None:
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    import genmotion
    from genmotion.rigging.meshio import load_mesh
    from genmotion.rigging.pipeline import JointChunk, RigAnythingPipeline, RigChunk
    from genmotion.rigging.preview import render_preview

    loaded = load_mesh(mesh, max_faces)  # bad meshes fail before the model loads
    pipe = genmotion.load(ckpt, device=device)
    if not isinstance(pipe, RigAnythingPipeline):
        raise UsageError(f"{ckpt} is not a RigAnything checkpoint", fix="pass a checkpoint of kind riganything")
    cap = min(max_joints, pipe.config.max_joints)
    result = None
    with Progress(TextColumn("{task.description}"), TimeElapsedColumn(), transient=True) as progress:
        task = progress.add_task("joints 0", total=None)
        for chunk in pipe.stream(loaded, num_samples=num_samples, max_joints=cap, seed=seed):
            if isinstance(chunk, JointChunk):
                progress.update(task, description=f"joints {chunk.index + 1}")
            elif isinstance(chunk, RigChunk):
                result = chunk.result
    assert result is not None
    result.save(out, kind)
    if preview is not None:
        render_preview(preview, result.vertices, result.faces, result.weights, result.skeleton, title=mesh.name)
    extra = f", preview {preview}" if preview is not None else ""
    typer.echo(
        f"wrote {out} ({kind}: {result.num_joints} joints, {len(result.vertices)} vertices, "
        f"{result.seconds:.2f} s{extra})"
    )


def bench_rig(
    json_path: BenchJson,
    plot: BenchPlot = None,
    quick: BenchQuick = False,
    threads: BenchThreads = 1,
    ckpt: BenchCkpt = "riganything-toy",
    compare: str | None = typer.Option(None, "--compare", help="A second checkpoint (e.g. a regression head)."),
    meshes: int = typer.Option(10, "--meshes", help="Creatures per body plan (and seeds per real asset)."),
    plans: str | None = typer.Option(None, "--plans", help="Comma-separated body plans, or none (default: all)."),
    assets: str = typer.Option(
        "all", "--assets", help="Real rigged assets: all, none, or comma-separated names and .urdf files."
    ),
    previews: Path | None = typer.Option(None, "--previews", help="Folder for one PNG per real asset."),
) -> None:
    """CD-J2J / J2B / B2B, joint precision and recall, parent accuracy, skin L1, seconds per mesh per body plan,
    and the same on real rigged assets (mannequin-x humans, pybullet robots) where their packages are installed."""
    check_bench_flags(json_path, plot, threads)
    if meshes < 1:
        raise UsageError(f"--meshes must be >= 1, got {meshes}")
    from genmotion.rigging.creatures import BODY_PLANS

    if plans is not None and plans.strip() == "none":
        chosen: list[str] = []
    else:
        chosen = sorted(BODY_PLANS) if plans is None else [p.strip() for p in plans.split(",") if p.strip()]
        unknown = [p for p in chosen if p not in BODY_PLANS]
        if unknown or not chosen:
            every = ", ".join(sorted(BODY_PLANS))
            raise UsageError(f"unknown body plans {unknown}", fix=f"use none or some of {every}")
    if previews is not None and previews.exists() and not previews.is_dir():
        raise InputError(f"--previews {previews} is a file", fix="give a folder")
    from genmotion.rigging.bench_assets import resolve_assets

    items = resolve_assets(assets)
    if not chosen and not items:
        raise UsageError("--plans none with --assets none measures nothing", fix="keep one of them")
    from genmotion.rigging.bench import run_rig_bench

    run_rig_bench(
        json_path,
        plot,
        ckpt=ckpt,
        compare=compare,
        meshes=2 if quick else meshes,
        threads=threads,
        plans=chosen,
        assets=items,
        previews=previews,
    )


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `genmotion rig` and `genmotion bench rig`."""
    app.command("rig")(rig)
    bench_app.command("rig")(bench_rig)
