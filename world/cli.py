"""`genmotion world` (forecast a context clip: a side-by-side video per sample and the raw forecasts as
.npz) and `genmotion bench world`. Thin: every flag is checked before torch is imported."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer

from genmotion.cli.bench_options import BenchCkpt, BenchJson, BenchPlot, BenchQuick, BenchThreads, check_bench_flags
from genmotion.cli.checks import (
    check_checkpoint_kind,
    check_file_input,
    check_file_output,
    check_folder_output,
    check_number,
)

__all__ = ["register", "write_outputs"]

log = logging.getLogger(__name__)
OUTPUT_KIND = "world"


def world(
    context: Path = typer.Option(..., "--context", "-c", help="Context clip (mp4/gif/PNG folder)."),
    horizon: int = typer.Option(8, "--horizon", "-n", help="Future frames to forecast."),
    samples: int = typer.Option(1, "--samples", "-k", help="Stochastic futures (K)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    steps: int = typer.Option(10, "--steps", help="Euler steps per forecast frame."),
    ckpt: str = typer.Option("vfmf-toy", "--ckpt", help="Registry name or checkpoint directory."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N."),
    threads: int = typer.Option(1, "--threads", help="torch threads."),
    fps: float = typer.Option(4.0, "--fps", help="Frames per second of the videos."),
    out: Path = typer.Option(Path("world_out"), "--out", "-o", help="Output folder: sample_K.mp4, forecast.npz."),
    force: bool = typer.Option(False, "--force", help="Replace a folder genmotion did not write (moved aside)."),
) -> None:  # fmt: skip
    """Forecast the future of a clip in feature space; decode it to RGB, segmentation, depth and normals."""
    check_number("--horizon", horizon, low=1)
    check_number("--samples", samples, low=1, high=64)
    check_number("--steps", steps, low=1, high=1000)
    check_number("--threads", threads, low=1)
    check_number("--fps", fps, low=0, low_open=True, high=1000)
    check_file_input(context if not context.is_dir() else None, "--context")
    if not context.exists():
        check_file_input(context, "--context")
    check_folder_output(out, OUTPUT_KIND, force)
    check_checkpoint_kind(ckpt, ("vfmf",), "world")
    _run(context, horizon, samples, seed, steps, ckpt, device, threads, fps, out, force)


def _run(
    context: Path, horizon: int, samples: int, seed: int, steps: int, ckpt: str, device: str, threads: int,
    fps: float, out: Path, force: bool,
) -> None:  # fmt: skip
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import genmotion
    from genmotion.io import partial_path_for, read_video
    from genmotion.world.pipeline import WorldChunk

    torch.set_num_threads(threads)
    frames = read_video(context, backend="pyav")  # short clips; PyAV fails quietly where decord prints to stderr
    pipe = genmotion.load(ckpt, device=device)
    chunks: list[WorldChunk] = []
    stream = pipe.stream(frames, horizon=horizon, num_samples=samples, seed=seed, num_steps=steps)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    try:
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task("forecast frames", total=horizon)
            for chunk in stream:
                chunks.append(chunk)
                progress.update(task, completed=chunk.index + 1)
    except KeyboardInterrupt as e:  # keep what was forecast, playable, beside the requested folder
        if chunks:
            partial = partial_path_for(out)
            write_outputs(pipe, frames, pipe.collect(chunks, chunks[-1].seconds), partial, fps=fps, force=True)
            e.add_note(f"the {len(chunks)} forecast frame(s) made so far are in {partial}/")
        raise
    write_outputs(pipe, frames, pipe.collect(chunks, chunks[-1].seconds), out, fps=fps, force=force)
    typer.echo(f"wrote {out}/ ({samples} sample video(s) of {horizon} forecast frames, forecast.npz)")


def write_outputs(pipe: Any, frames: Any, result: Any, out: Path, *, fps: float = 4.0, force: bool = False) -> None:
    """Write `sample_<k>.mp4` (context then forecast, RGB | seg | depth | normals) per sample and
    `forecast.npz` into the folder `out`, atomically."""
    import numpy as np

    from genmotion.io import open_video_writer
    from genmotion.io.atomic import atomic_folder
    from genmotion.world.visual import panel, side_by_side

    images = pipe.prepare_context(frames)[-pipe.model.config.forecaster.max_context :]
    decoded = pipe.decode_features(pipe.model.features(images))
    rgb_ctx = np.asarray(frames)[-len(images) :]
    if rgb_ctx.shape[1:3] != (pipe.height, pipe.width):
        from genmotion.pipeline import to_uint8

        rgb_ctx = to_uint8(images)
    ctx_panel = panel(rgb_ctx, decoded["segmentation"], decoded["depth"], decoded["normals"])
    with atomic_folder(out, OUTPUT_KIND, force) as tmp:
        for k in range(result.frames.shape[0]):
            fut = panel(result.frames[k], result.segmentation[k], result.depth[k], result.normals[k])
            with open_video_writer(tmp / f"sample_{k}.mp4", fps) as writer:
                writer.write(side_by_side(ctx_panel, fut))
        np.savez_compressed(
            tmp / "forecast.npz", rgb=result.frames, segmentation=result.segmentation.astype(np.uint8),
            depth=result.depth.astype(np.float32), normals=result.normals.astype(np.float32),
            latents=result.latents.astype(np.float32), context_frames=np.int64(len(images)),
        )  # fmt: skip


def bench_world(
    json_path: BenchJson,
    plot: BenchPlot = None,
    ckpt: BenchCkpt = "vfmf-toy",
    samples: int = typer.Option(4, "--samples", help="K for mean-of-K / best-of-K."),
    scenes: int = typer.Option(48, "--scenes", help="Held-out toy-world scenes."),
    threads: BenchThreads = 1,
    quick: BenchQuick = False,
    strip: Path | None = typer.Option(None, "--strip", help="Also draw a frame strip of one held-out scene (PNG)."),
) -> None:
    """mIoU, depth AbsRel / delta1, normal accuracy and PSNR at horizons 1/4/8 (VFMF vs baselines), speed."""
    check_bench_flags(json_path, plot)
    check_number("--samples", samples, low=1, high=16)
    check_number("--scenes", scenes, low=1)
    check_number("--threads", threads, low=1)
    if strip is not None:
        check_file_output(strip, (".png",), "--strip")
    check_checkpoint_kind(ckpt, ("vfmf",), "bench world")
    from genmotion.bench.report import run_bench
    from genmotion.world.bench import plot_world_bench, render_strip, run_world_bench, summary_line

    scenes = min(scenes, 4) if quick else scenes
    results = run_bench(
        lambda: run_world_bench(ckpt, samples=samples, scenes=scenes, quick=quick), threads, json_path, plot,
        plot_world_bench,
    )  # fmt: skip
    if strip is not None:
        render_strip(ckpt, strip)
    typer.echo(summary_line(results))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `genmotion world` and `genmotion bench world`."""
    app.command("world")(world)
    bench_app.command("world")(bench_world)
