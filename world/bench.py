"""`genmotion bench world`: forecast held-out toy-world clips and score the decoded futures against ground
truth at horizons 1, 4 and 8 (mIoU, depth AbsRel / delta1, normal accuracy, RGB PSNR; mean-of-K and
best-of-K), for VFMF, the regression and PCA-latent baselines shipped beside it, copying the last frame, and
the decoders on the true future features (the ceiling); plus seconds per forecast frame and cache bytes
over a long rollout."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import genmotion
from genmotion.bench.report import bar_chart, time_median
from genmotion.registry import resolve
from genmotion.world.data import ClipSpec, frames_to_tensor, render_clips
from genmotion.world.metrics import HIGHER_IS_BETTER, frame_scores
from genmotion.world.pipeline import VFMFPipeline
from genmotion.world.sampler import forecast_stream, parse_policy

__all__ = ["plot_world_bench", "run_world_bench", "summary_line"]

log = logging.getLogger(__name__)
HORIZONS = (1, 4, 8)
CONTEXT = 4
BENCH_SEED = 2  # held out: training used seed 0, the training-time evaluations seed 1


def _cpu() -> dict[str, Any]:
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    with contextlib.suppress(OSError):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)  # other jobs on the machine slow the wall times
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "")
        flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
        info.update(cpu=model, flags=sorted(f for f in flags if f.startswith(("avx", "amx", "fma"))))
    except OSError:
        pass
    return info


def _truth(clips: Any, s: int) -> dict[str, np.ndarray]:
    sl = slice(CONTEXT, CONTEXT + max(HORIZONS))
    return {"rgb": clips.rgb[s, sl], "classes": clips.classes[s, sl], "depth": clips.depth[s, sl],
            "normals": clips.normals[s, sl]}  # fmt: skip


def _score_samples(decoded: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """decoded fields (K, T, ...) -> scores (K, T) per metric."""
    K = decoded["rgb"].shape[0]
    per = [frame_scores({k: v[i] for k, v in decoded.items()}, truth) for i in range(K)]
    return {m: np.stack([p[m] for p in per]) for m in per[0]}


def _aggregate(scores: list[dict[str, np.ndarray]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per scene (K, T) scores -> {metric: {"mean_of_K"/"best_of_K": {"h1": ...}}}."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for metric, higher in HIGHER_IS_BETTER.items():
        stack = np.stack([s[metric] for s in scores])  # (S, K, T)
        best = stack.max(1) if higher else stack.min(1)
        out[metric] = {
            "mean_of_K": {f"h{h}": round(float(stack.mean(1)[:, h - 1].mean()), 4) for h in HORIZONS},
            "best_of_K": {f"h{h}": round(float(best[:, h - 1].mean()), 4) for h in HORIZONS},
        }
    return out


def _forecast(pipe: VFMFPipeline, clip_rgb: np.ndarray, samples: int, seed: int) -> dict[str, np.ndarray]:
    r = pipe.generate(clip_rgb[:CONTEXT], horizon=max(HORIZONS), num_samples=samples, seed=seed)
    return {"rgb": r.frames, "segmentation": r.segmentation, "depth": r.depth, "normals": r.normals}


def _ceilings(pipe: VFMFPipeline, clip_rgb: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Decoders on the true future features, and on them passed through each latent (VAE, PCA)."""
    images = frames_to_tensor(clip_rgb[CONTEXT : CONTEXT + max(HORIZONS)])
    with torch.no_grad():
        feats = pipe.model.features(images)
        vae = pipe.model.vae.decode(pipe.model.vae.encode(feats))
        pca = pipe.model.pca.decode(pipe.model.pca.encode(feats))
    out = {}
    for name, f in (("ceiling_gt_features", feats), ("ceiling_vae_latent", vae), ("ceiling_pca_latent", pca)):
        out[name] = {k: v[None] for k, v in pipe.decode_features(f).items()}
    return out


def _copy_last(pipe: VFMFPipeline, clip_rgb: np.ndarray) -> dict[str, np.ndarray]:
    images = frames_to_tensor(clip_rgb[CONTEXT - 1 : CONTEXT])
    with torch.no_grad():
        d = pipe.decode_features(pipe.model.features(images))
    return {k: np.repeat(v[None], max(HORIZONS), axis=1) for k, v in d.items()}


def _speed(pipe: VFMFPipeline, clip_rgb: np.ndarray, quick: bool) -> dict[str, Any]:
    """Seconds per forecast frame (K = 1, decoding included), cache on and off; cache bytes over a long rollout."""
    out: dict[str, Any] = {}
    horizon = 4 if quick else 16
    for cache in (True, False):

        def run(cache: bool = cache) -> None:
            list(pipe.stream(clip_rgb[:CONTEXT], horizon=horizon, num_samples=1, seed=0, cache=cache))

        cpu0 = time.process_time()
        sec = time_median(run, warmup=1, repeats=1 if quick else 3) / horizon
        cpu = (time.process_time() - cpu0) / ((2 if quick else 4) * horizon)
        out["cached" if cache else "recompute"] = {
            "seconds_per_frame": round(sec, 5),
            "frames_per_s": round(1 / sec, 2),
            "cpu_seconds_per_frame": round(cpu, 5),
            "frames_per_cpu_s": round(1 / max(cpu, 1e-9), 2),
        }
    latents = pipe.encode_context(clip_rgb[:CONTEXT])[None]
    policy, held = parse_policy("window-kv", window=pipe.model.config.forecaster.max_context), []
    frames = 16 if quick else 64
    stream = forecast_stream(pipe.model.forecaster, latents, frames, generator=torch.Generator().manual_seed(0),
                             policy=policy)  # fmt: skip
    for _ in stream:
        held.append(policy.bytes_held())
    out["cache_bytes"] = {"frame_1": held[0], "frame_8": held[min(7, len(held) - 1)], f"frame_{frames}": held[-1]}
    out["timing"] = (
        "wall: median of 3 after 1 warm-up; cpu: process CPU time over all 4 runs (what one free thread takes); "
        "encoding the context and decoding every frame included"
    )
    return out


def run_world_bench(ckpt: str, *, samples: int = 4, scenes: int = 48, quick: bool = False) -> dict[str, Any]:
    """All the figures (see the module docstring) as a JSON-ready dict."""
    pipe = genmotion.load(ckpt)
    root = resolve(ckpt)
    methods: dict[str, tuple[VFMFPipeline, int]] = {"vfmf": (pipe, samples)}
    for name in ("regression", "vfmf-pca"):
        if (root / "baselines" / name).is_dir():
            base = pipe.with_forecaster(root / "baselines" / name)
            methods[name] = (base, 1 if base.model.config.forecaster.objective == "regression" else samples)
    spec = ClipSpec(num_scenes=scenes, num_frames=CONTEXT + max(HORIZONS), size=pipe.height, seed=BENCH_SEED)
    clips = render_clips(spec)
    scores: dict[str, list[dict[str, np.ndarray]]] = {}
    start = time.perf_counter()
    for s in range(scenes):
        truth = _truth(clips, s)
        outputs = {name: _forecast(p, clips.rgb[s], k, seed=s) for name, (p, k) in methods.items()}
        outputs["copy_last"] = _copy_last(pipe, clips.rgb[s])
        outputs.update(_ceilings(pipe, clips.rgb[s]))
        for name, dec in outputs.items():
            scores.setdefault(name, []).append(_score_samples(dec, truth))
    log.info("scored %d scenes in %.1f s", scenes, time.perf_counter() - start)
    return {
        "setting": {
            **_cpu(),
            "ckpt": str(ckpt),
            "scenes": scenes,
            "context_frames": CONTEXT,
            "samples_K": samples,
            "horizons": list(HORIZONS),
            "num_steps": 10,
            "image_size": pipe.height,
            "clips": spec.__dict__,
            "note": "regression is deterministic: its K is 1 (mean-of-K = best-of-K); mIoU is per frame "
            "over the classes present, averaged",
        },  # fmt: skip
        "methods": {name: _aggregate(s) for name, s in scores.items()},
        "speed": _speed(pipe, clips.rgb[0], quick),
    }


def summary_line(results: dict[str, Any]) -> str:
    m = results["methods"]
    parts = [f"{name}: mIoU@4 best {v['miou']['best_of_K']['h4']:.3f} d1@4 {v['delta1']['best_of_K']['h4']:.3f}"
             for name, v in m.items()]  # fmt: skip
    return "; ".join(parts) + f"; {results['speed']['cached']['frames_per_s']} frames/s"


def plot_world_bench(results: dict[str, Any], path: str | Path) -> None:
    m = results["methods"]
    panels = []
    for metric, label in (("miou", "mIoU"), ("delta1", "depth delta1"), ("normal_30", "normals < 30 deg"),
                          ("psnr", "RGB PSNR (dB)")):  # fmt: skip
        for h in ("h1", "h4", "h8"):
            panels.append((f"{label} at {h}, best of K", {n: v[metric]["best_of_K"][h] for n, v in m.items()}))
    sp = results["speed"]
    panels.append(("forecast frames / s (K = 1)", {k: sp[k]["frames_per_s"] for k in ("cached", "recompute")}))
    bar_chart(panels, path)


def render_strip(ckpt: str, path: str | Path, *, scene: int | None = None, samples: int = 2) -> Path:
    """A frame strip of one held-out scene (default: of the first 8, the one showing most object pixels):
    truth, VFMF samples, the baselines (RGB, then segmentation and depth rows), context then 8 forecast
    frames, written as PNG."""
    from genmotion.io.atomic import atomic_path
    from genmotion.world.visual import colour_depth, colour_segmentation, labelled_grid

    pipe = genmotion.load(ckpt)
    root = resolve(ckpt)
    spec = ClipSpec(num_scenes=8 if scene is None else scene + 1, num_frames=CONTEXT + max(HORIZONS),
                    size=pipe.height, seed=BENCH_SEED)  # fmt: skip
    clips = render_clips(spec)
    if scene is None:
        scene = int((clips.classes >= 2).sum((1, 2, 3)).argmax())
    clip = clips.rgb[scene]
    ctx = slice(0, CONTEXT)
    vfmf = _forecast(pipe, clip, samples, seed=scene)
    methods = {f"VFMF sample {k + 1}": {n: v[k] for n, v in vfmf.items()} for k in range(samples)}
    for name in ("regression", "vfmf-pca"):
        if (root / "baselines" / name).is_dir():
            out = _forecast(pipe.with_forecaster(root / "baselines" / name), clip, 1, seed=scene)
            methods[name] = {n: v[0] for n, v in out.items()}
    truth = {"rgb": clip, "segmentation": clips.classes[scene], "depth": clips.depth[scene]}
    rows: list[tuple[str, np.ndarray]] = [("truth RGB", truth["rgb"])]
    for name, m in methods.items():
        rows.append((f"{name} RGB", np.concatenate([clip[ctx], m["rgb"]])))
    for field, short, colour in (("segmentation", "seg", colour_segmentation), ("depth", "depth", colour_depth)):
        rows.append((f"truth {short}", colour(truth[field])))
        for name, m in list(methods.items())[:1] + list(methods.items())[samples:]:
            rows.append((f"{name} {short}", np.concatenate([colour(truth[field][ctx]), colour(m[field])])))
    image = labelled_grid(rows, context=CONTEXT)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)
