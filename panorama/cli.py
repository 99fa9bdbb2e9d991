"""`genmotion panorama` (a perspective video and its camera path -> a 360-degree video tagged for VR players)
and `genmotion bench panorama`. Thin: every flag and input is checked before torch or a model is loaded;
frames are written as windows finish; Ctrl-C leaves a playable, tagged `out.partial.mp4`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from genmotion.cli.bench_options import BenchCkpt, BenchJson, BenchPlot, BenchQuick, BenchThreads, check_bench_flags
from genmotion.cli.checks import check_checkpoint_kind, check_device_name, check_file_input, check_video_output
from genmotion.errors import InputError, UsageError

__all__ = ["register"]

DEFAULT_CKPT = "cubecomposer-toy"
_FORMATS = ("equirect", "cubemap", "frames")


def _check_output(out: str, fmt: str, force: bool) -> None:
    kind = check_video_output(out, force)
    if fmt == "frames" and kind != "png":
        raise UsageError(f"--format frames writes a folder, not {out}", fix=f"write -o {Path(out).with_suffix('')}/")
    if fmt != "frames" and kind != "mp4":
        raise UsageError(f"--format {fmt} writes an MP4, not {out}", fix=f"write -o {Path(out).with_suffix('.mp4')}")


def _probe_input(path: Path) -> Any:
    from genmotion.io import probe

    check_file_input(path, "--input")
    try:
        info = probe(path)
    except InputError:
        raise
    except Exception as e:  # a text file or a broken container
        raise InputError(f"--input {path} is not a video", why=f"{type(e).__name__}: {e}", fix="pass an MP4") from e
    if info.num_frames < 1:
        raise InputError(f"--input {path} has no frames", fix="pass a video with at least one frame")
    return info


def panorama(
    input: Path = typer.Option(..., "--input", "-i", help="The perspective video (MP4, or any format PyAV reads)."),
    out: str = typer.Option("panorama.mp4", "--out", "-o", help="out.mp4, or out/ for --format frames."),
    fov: float = typer.Option(90.0, "--fov", help="Horizontal field of view of the input, degrees (10-170)."),
    trajectory: Path | None = typer.Option(None, "--trajectory", help="Per-frame yaw/pitch/roll JSON (see docs)."),
    size: str = typer.Option("1k", "--size", help="Equirect output size: 1k (1024x512), 2k, 4k (3840x1920)."),
    format: str = typer.Option("equirect", "--format", help="equirect | cubemap (3x2 faces) | frames (PNGs)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    steps: int = typer.Option(8, "--steps", help="Flow ODE steps per face and window."),
    ckpt: str = typer.Option(DEFAULT_CKPT, "--ckpt", help="Registry name or checkpoint directory."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    threads: int = typer.Option(1, "--threads", help="torch threads."),
    force: bool = typer.Option(False, "--force", help="Write a PNG folder over a folder genmotion did not write."),
) -> None:
    """A 360-degree video (CubeComposer) from a perspective video, with Google spherical metadata for VR."""
    from genmotion.panorama.config import check_fov, output_size

    if format not in _FORMATS:
        raise UsageError(f"unknown --format {format!r}", fix=f"use one of {', '.join(_FORMATS)}")
    dims = output_size(size)
    check_fov(fov)
    if steps < 1 or threads < 1:
        raise UsageError("--steps and --threads must be >= 1")
    check_device_name(device)
    _check_output(out, format, force)
    info = _probe_input(input)
    from genmotion.panorama.trajectory import load_trajectory  # torch: only once the flags are known to be good

    traj = load_trajectory(trajectory, info.num_frames, fov) if trajectory is not None else None
    check_checkpoint_kind(ckpt, ("cubecomposer",), "panorama")
    _run(input, out, info, traj, fov, size, dims, format, seed, steps, ckpt, device, threads, force)


def _run(
    input: Path, out: str, info: Any, traj: Any, fov: float, size: str, dims: tuple[int, int], fmt: Any,
    seed: int, steps: int, ckpt: str, device: str, threads: int, force: bool,
) -> None:  # fmt: skip
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import genmotion
    from genmotion.io import read_video
    from genmotion.panorama.config import SampleConfig
    from genmotion.panorama.export import open_panorama_writer
    from genmotion.runtime import configure

    runtime = configure(device, "auto", threads)
    pipe: Any = genmotion.load(ckpt, device=runtime.device)
    video = read_video(input)
    fps = info.fps or pipe.fps
    windows = -(-video.shape[0] // pipe.config.window)
    stream = pipe.stream(video, traj, size=size, fov=fov, format=fmt, seed=seed, sample=SampleConfig(num_steps=steps))
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    writer = open_panorama_writer(out, fps, fmt)
    writer.force = force
    with writer, Progress(*columns, transient=False) as progress:
        task = progress.add_task(f"panorama {size} windows", total=windows)
        for chunk in stream:
            writer.write(chunk.frames)
            progress.advance(task)
    h, w = writer.frame_size or (0, 0)
    typer.echo(f"wrote {out} ({writer.frames_written} frames, {w}x{h} {fmt}, {fps:g} fps)")


def bench_panorama(
    json_path: BenchJson,
    plot: BenchPlot = None,
    ckpt: BenchCkpt = DEFAULT_CKPT,
    threads: BenchThreads = 1,
    quick: BenchQuick = False,
) -> None:
    """Held-out toy 360 scenes: covered/uncovered PSNR, seams, flicker, ablations, speed and memory per size."""
    check_bench_flags(json_path, plot, threads)
    from genmotion.bench.report import run_bench
    from genmotion.panorama.bench import BenchSettings, plot_panorama_bench, run_panorama_bench

    check_checkpoint_kind(ckpt, ("cubecomposer",), "bench panorama")
    settings = BenchSettings.quick() if quick else BenchSettings()
    run_bench(
        lambda: run_panorama_bench(ckpt, settings, threads=threads), threads, json_path, plot, plot_panorama_bench
    )
    typer.echo(f"wrote {json_path}" + (f" and {plot}" if plot else ""))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `genmotion panorama` and `genmotion bench panorama`."""
    app.command("panorama")(panorama)
    bench_app.command("panorama")(bench_panorama)
