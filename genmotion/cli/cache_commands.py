"""`genmotion profile-heads` (Forcing-KV head profile) and `genmotion bench cache` (every cache policy vs exact)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from genmotion.cli.bench_options import BenchJson, BenchPlot, BenchQuick, BenchThreads, check_bench_flags
from genmotion.cli.checks import check_file_output, check_number

__all__ = ["register"]


def _flow_model(name: str, seed: int) -> tuple[Any, Any]:
    """(model, FrameLayout) for `--model`: "tiny" (built-in, from `seed`) or a registry name / checkpoint dir.

    A checkpoint's pipeline must be a `genmotion.pipeline.FlowPolicyHost` exposing the flow model as
    `flow_model` (the `FlowModel` protocol) and its token layout as `frame_layout` (a `FrameLayout`).
    """
    from genmotion.cache import FrameLayout
    from genmotion.errors import UsageError

    if name == "tiny":
        from genmotion.bench.cache import CacheBenchConfig, seeded_tiny_flow_model

        cfg = CacheBenchConfig()
        return seeded_tiny_flow_model(cfg.model_config, seed), cfg.layout
    from genmotion.pipeline import FlowPolicyHost
    from genmotion.registry import load_pipeline

    pipe = load_pipeline(name)
    host: Any = pipe if isinstance(pipe, FlowPolicyHost) else None
    layout = host.frame_layout if host is not None else None
    model = host.flow_model if host is not None else None
    if model is None or not isinstance(layout, FrameLayout):
        raise UsageError(
            f"model {name!r} ({type(pipe).__name__}) is not a chunked causal flow model",
            why="profiling needs a pipeline with a flow `model` and a `frame_layout`",
            fix="profile a causal flow video checkpoint, or use --model tiny",
        )
    return model, layout


def profile_heads(
    model: str = typer.Option(..., "--model", help="'tiny', a registry name or a checkpoint directory."),
    out: Path = typer.Option(..., "-o", "--out", help="Write the head profile here (JSON)."),
    chunks: int = typer.Option(8, "--chunks", help="Chunks generated while profiling."),
    steps: int = typer.Option(4, "--steps", help="Denoising steps per chunk while profiling."),
    seed: int = typer.Option(0, "--seed", help="Noise seed (and the weights of --model tiny)."),
) -> None:
    """Classify attention heads as static (>= 80 % of history attention on the last 4 frames) or dynamic."""
    check_number("--chunks", chunks, low=1, high=10_000)
    check_number("--steps", steps, low=1, high=1000)
    check_number("--seed", seed, low=0)
    check_file_output(out, (".json",))
    import torch

    from genmotion.cache import profile_heads as run_profile
    from genmotion.cache import save_head_profile

    if model != "tiny":  # a pipeline with its own head profiler (e.g. VAR's next-scale HACK/ScaleKV profile)
        from genmotion.pipeline import HeadProfiler
        from genmotion.registry import load_pipeline

        pipe = load_pipeline(model)
        if isinstance(pipe, HeadProfiler):
            typer.echo(pipe.profile_heads(out, seed=seed))
            return
    flow, layout = _flow_model(model, seed)
    profile = run_profile(
        flow,
        layout,
        generator=torch.Generator().manual_seed(seed),
        num_chunks=chunks,
        num_steps=steps,
        model_name=model,
    )
    save_head_profile(profile, out)
    typer.echo(f"wrote {out}: {profile.summary()}")


def cache(
    json_path: BenchJson,
    plot: BenchPlot = None,
    model: str = typer.Option(
        "tiny", "--model", help="'tiny' (a seeded toy flow model) or a causal flow checkpoint (e.g. ca2vdm-toy)."
    ),
    prompt: str | None = typer.Option(None, "--prompt", help="Text prompt of a checkpoint's videos."),
    guidance: float | None = typer.Option(None, "--guidance", help="Classifier-free guidance of a checkpoint."),
    steps: int | None = typer.Option(None, "--steps", help="Denoising steps per chunk (default 24, quick 12)."),
    lengths: str | None = typer.Option(None, "--lengths", help="Video lengths in chunks, e.g. '4,8,16,32'."),
    repeats: int | None = typer.Option(None, "--repeats", help="Timed passes per policy (median)."),
    curve_chunks: int | None = typer.Option(
        None, "--curve-chunks", help="Chunks of FlowCache's threshold curve (default 16, at most the longest length)."
    ),
    corrected: str | None = typer.Option(
        None,
        "--corrected",
        help="Also curve the error rule with reuse and the chord correction at these thresholds, e.g. '0.1,0.15'.",
    ),
    threads: BenchThreads = 2,
    quick: BenchQuick = False,
) -> None:
    """Recompute, SharedClean, RollingWindow, FlowCache, FlowCache-KV, Forcing-KV and compositions vs exact."""
    from genmotion.errors import UsageError

    check_bench_flags(json_path, plot, threads)
    check_number("--guidance", guidance, low=0)
    if prompt is not None and not prompt.strip():
        raise UsageError("--prompt is empty", fix="describe the video in a few words")
    try:
        sizes = tuple(int(n) for n in lengths.split(",")) if lengths else None
    except ValueError:
        raise UsageError(f"--lengths must be comma-separated chunk counts, got {lengths!r}") from None
    counts = [n for n in (steps, repeats, curve_chunks) if n is not None]  # 0 is given, and too few
    if (sizes is not None and (not sizes or min(sizes) < 1)) or min(counts, default=1) < 1:
        raise UsageError("--lengths, --steps, --repeats and --curve-chunks must be >= 1")
    corrected_thresholds = _thresholds("--corrected", corrected)
    from genmotion.bench.cache import CacheBenchConfig, plot_cache_bench, run_cache_bench
    from genmotion.bench.report import run_bench

    cfg = CacheBenchConfig.for_model(
        model,
        quick=quick,
        prompt=prompt,
        guidance_scale=guidance,
        num_steps=steps,
        lengths=sizes,
        repeats=repeats,
        curve_chunks=curve_chunks,
        corrected_thresholds=corrected_thresholds,
    )
    results = run_bench(lambda: run_cache_bench(cfg), threads, json_path, plot, plot_cache_bench)
    targets = results["targets"]
    met = sum(bool(t["met"]) for t in targets.values())  # met is None without a targets file
    typer.echo(f"wrote {json_path}: {met}/{len(targets)} targets met")
    for name, t in targets.items():
        typer.echo(f"  {'met ' if t['met'] else 'MISS'} {name}: {t['value']} (target {t['target']})")


def _thresholds(flag: str, text: str | None) -> tuple[float, ...] | None:
    """Comma-separated thresholds >= 0 (None when the flag is not given); anything else is a UsageError."""
    from genmotion.errors import UsageError

    if text is None:
        return None
    fix = f"e.g. {flag} 0.1,0.15"
    try:
        values = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise UsageError(f"{flag} must be comma-separated thresholds, got {text!r}", fix=fix) from None
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise UsageError(f"{flag} thresholds must be finite and >= 0, got {text!r}", fix=fix)
    return values


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `profile-heads` to `app` and `cache` to `bench_app` (torch is imported only when they run)."""
    app.command("profile-heads")(profile_heads)
    bench_app.command("cache")(cache)
