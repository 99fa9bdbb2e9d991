"""The `real_assets` section of `genmotion bench rig`: the rigger scored on real rigged assets that install
from the package index (`genmotion.rigging.assets`) and on URDF files a user names, with the creature
plans' metrics, seconds per mesh, and a preview per asset (its own rig above, the predicted rig below).
An asset whose package is missing is reported as "not installed: pip install ...", never scored.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from genmotion.rigging.assets import ASSETS, RigAsset, asset_status, load_asset, urdf_asset
from genmotion.rigging.skeleton import bfs_order, reorder

__all__ = ["evaluate_assets", "measurable", "render_comparison", "resolve_assets"]

log = logging.getLogger(__name__)
EXTRAS = "genmotion[assets]"


def resolve_assets(spec: str) -> list[str]:
    """The assets a `--assets` value names: "all" (every known one), "none", or comma-separated names and
    .urdf paths. Unknown names and missing files are a `UsageError` / `InputError` before any work."""
    from genmotion.errors import InputError, UsageError

    if spec.strip() == "none":
        return []
    if spec.strip() == "all":
        return list(ASSETS)
    chosen = [s.strip() for s in spec.split(",") if s.strip()]
    for item in chosen:
        if item.lower().endswith(".urdf"):
            if not Path(item).is_file():
                raise InputError(f"--assets: URDF {item} does not exist", fix="check the path")
        elif item not in ASSETS:
            raise UsageError(f"--assets: unknown asset {item!r}", fix=f"use all, none, {', '.join(ASSETS)} or a .urdf")
    if not chosen:
        raise UsageError("--assets names nothing", fix="give all, none, asset names or .urdf paths")
    return chosen


def _missing(item: str) -> str | None:
    return None if item.lower().endswith(".urdf") else asset_status(item)


def measurable(items: list[str]) -> bool:
    """True when at least one of `items` can be read here (a .urdf file, or an asset whose package is installed)."""
    return any(_missing(item) is None for item in items)


def _read(item: str) -> RigAsset:
    return urdf_asset(item) if item.lower().endswith(".urdf") else load_asset(item)


def render_comparison(path: Path, asset: RigAsset, result: Any) -> Path:
    """One PNG: the asset's own rig (top) over the predicted rig (bottom), three views each, as
    `genmotion rig --preview` draws them."""
    from PIL import Image

    from genmotion.io.atomic import atomic_path
    from genmotion.rigging.preview import render_preview

    with tempfile.TemporaryDirectory() as tmp:
        top = render_preview(
            Path(tmp) / "a.png",
            asset.vertices,
            asset.faces,
            asset.weights,
            asset.skeleton,
            title=f"{asset.name}: its own rig",
        )
        bottom = render_preview(
            Path(tmp) / "b.png",
            result.vertices,
            result.faces,
            result.weights,
            result.skeleton,
            title=f"{asset.name}: predicted",
        )
        a, b = Image.open(top), Image.open(bottom)
        out = Image.new("RGB", (max(a.width, b.width), a.height + b.height), "white")
        out.paste(a, (0, 0))
        out.paste(b, (0, a.height))
        with atomic_path(path) as target:
            out.save(target, format="PNG")
    return path


def _score_asset(pipe: Any, asset: RigAsset, runs: int, seed: int, previews: Path | None) -> dict[str, Any]:
    from genmotion.rigging.bench import _nanmean, rig_timed, score_rig

    order = bfs_order(asset.skeleton)
    gt, skin = reorder(asset.skeleton, order), asset.weights[:, order]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            rng = np.random.default_rng([seed, i])
            result, seconds = rig_timed(pipe, asset.vertices, asset.faces, i, Path(tmp))
            rows.append({**score_rig(pipe, result, asset.vertices, asset.faces, gt, skin, rng), "seconds": seconds})
            if i == 0 and previews is not None:
                render_comparison(previews / f"{asset.name}.png", asset, result)
    keys = sorted({k for r in rows for k in r})
    out: dict[str, Any] = {k: _nanmean([r.get(k, np.nan) for r in rows]) for k in keys}
    out["seconds_median"] = float(np.median([r["seconds"] for r in rows]))
    return out


def _leaf_share(asset: RigAsset) -> float:
    """The mean skin weight on leaf joints: real skins put weight there (a head, a hand, a robot's last link),
    but the rigger, like RigAnything, gives each bone to the joint it starts from, so a leaf holds none."""
    leaves = [j for j, kids in enumerate(asset.skeleton.children()) if not kids]
    return float(asset.weights[:, leaves].sum(axis=1).mean())


def evaluate_assets(
    pipe: Any, items: list[str], runs: int, previews: Path | None = None, seed: int = 11
) -> dict[str, dict[str, Any]]:
    """Per asset: where it came from, its size, and the mean metrics over `runs` seeds (or its status when
    its package is not installed). Previews go to `previews/<asset>.png` when given."""
    if previews is not None:
        previews.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        missing = _missing(item)
        if missing is not None:
            out[item] = {"status": f"{missing} (or pip install '{EXTRAS}')"}
            continue
        assert pipe is not None, "a measurable asset needs the pipeline"
        asset = _read(item)
        entry: dict[str, Any] = {
            "status": "measured",
            "source": asset.source,
            "skin": "rigid" if ((asset.weights > 0).sum(axis=1) == 1).all() else "skinned",
            "vertices": len(asset.vertices),
            "faces": len(asset.faces),
            "runs": runs,
            "leaf_skin_share": _leaf_share(asset),
        }
        entry.update(_score_asset(pipe, asset, runs, seed, previews))
        if previews is not None:
            entry["preview"] = str(previews / f"{asset.name}.png")
        log.info("%s: %s", asset.name, {k: v for k, v in entry.items() if isinstance(v, float)})
        out[asset.name] = entry
    return out
