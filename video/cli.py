"""`genmotion video` (text to video, frames written as they are made) and `genmotion bench video`.

Thin: every argument is checked before any model is loaded (exit 2 for bad flags, 3 for a bad output
path), then the pipeline streams frames into a genmotion.io writer. torch is imported inside the bodies
so `genmotion --help` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import typer

from genmotion.errors import GenmotionError, InputError, UsageError

__all__ = ["Interrupted", "check_output_path", "parse_prompt_at", "register"]


class Interrupted(GenmotionError):
    """Ctrl-C during generation (exit 130); the message says where the partial video is."""

    exit_code = 130


def parse_prompt_at(items: list[str]) -> list[tuple[int, str]]:
    """`["32=the ball turns right", ...]` -> [(32, "the ball turns right"), ...]."""
    out = []
    for item in items:
        frame, sep, text = item.partition("=")
        if not sep or not frame.strip().isdigit():
            raise UsageError(
                f"--prompt-at {item!r} is not FRAME=TEXT",
                fix='write e.g. --prompt-at 32="the red ball turns and moves right"',
            )
        if not text.strip():
            raise UsageError(f"--prompt-at {item!r} has an empty prompt", fix="describe what follows that frame")
        out.append((int(frame), text.strip()))
    return out


def check_output_path(path: Path) -> None:
    """Raise before any work when `path` cannot be written (format from the suffix, a writable folder)."""
    from genmotion.io import video_format

    video_format(path)  # unknown suffix: UsageError
    if path.exists() and path.is_dir() and str(path).endswith((".mp4", ".gif")):
        raise InputError(f"output {path} is a folder", fix="remove it or choose another file name")
    folder = path if video_format(path) == "png" else path.parent
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(
            f"cannot write {path}",
            why=f"{existing} is not a writable folder",
            fix="choose an output path in a folder you can write to",
        )


def video(
    prompt: str = typer.Option(..., "--prompt", "-p", help="What the video shows."),
    frames: int = typer.Option(48, "--frames", "-n", help="Number of frames."),
    fps: float = typer.Option(12.0, "--fps", help="Frames per second of the file."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    guidance: float = typer.Option(3.0, "--guidance", help="Classifier-free guidance scale (1 = off)."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature (0 = greedy)."),
    top_k: int = typer.Option(0, "--top-k", help="Keep the k most likely codes (0 = off)."),
    top_p: float = typer.Option(0.0, "--top-p", help="Nucleus sampling mass (0 = off)."),
    prompt_at: list[str] = typer.Option([], "--prompt-at", help='Change the prompt from a frame on: 32="..."'),
    model: str = typer.Option("videoar", "--model", "-m", help="videoar or ca2vdm (sets the default --ckpt)."),
    ckpt: str | None = typer.Option(None, "--ckpt", help="Registry name or checkpoint directory."),
    cache: str = typer.Option("shared", "--cache", help="ca2vdm cache policy, e.g. shared, flowcache+forcing-kv."),
    cache_param: list[str] = typer.Option(
        [],
        "--cache-param",
        help="A cache policy parameter, e.g. thresh=0.1, order=1, rule=input or queries=denoising (repeatable).",
    ),
    steps: int = typer.Option(10, "--steps", help="ca2vdm denoising steps per chunk."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    threads: int = typer.Option(1, "--threads", help="torch threads (small per-frame ops: 1 is fastest)."),
    out: Path = typer.Option(Path("video.mp4"), "--out", "-o", help="out.mp4, out.gif or a folder for PNGs."),
) -> None:
    """Text to video with VideoAR (next-frame x next-scale) or the Ca2-VDM causal flow model, written as made."""
    if model not in DEFAULT_CKPT:
        raise UsageError(f"unknown --model {model!r}", fix=f"use one of {', '.join(DEFAULT_CKPT)}")
    check_cache_name(cache)
    cache_params = parse_cache_params(cache, cache_param)
    if steps < 1:
        raise UsageError(f"--steps must be >= 1, got {steps}")
    if not prompt.strip():
        raise UsageError("the prompt is empty", fix='pass --prompt "a red ball bouncing to the left"')
    if frames < 1:
        raise UsageError(f"--frames must be >= 1, got {frames}", fix="ask for at least one frame")
    if fps <= 0:
        raise UsageError(f"--fps must be positive, got {fps}")
    schedule = parse_prompt_at(prompt_at)
    check_output_path(out)
    sampling: dict[str, object] = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "num_steps": steps}
    sampling |= {"cache": cache, "cache_params": cache_params}
    _run(prompt, frames, fps, seed, guidance, sampling, schedule, ckpt or DEFAULT_CKPT[model], device, threads, out)


DEFAULT_CKPT = {"videoar": "videoar-toy", "ca2vdm": "ca2vdm-toy"}
_FLOW_ONLY = ("cache", "cache_params", "num_steps")  # the keywords only the causal flow pipeline takes


def check_cache_name(name: str) -> None:
    """Raise UsageError (exit 2) for a cache policy name `genmotion.cache.parse_policy` would refuse."""
    from genmotion.cache.compose import policy_names, policy_parts

    unknown = [p for p in policy_parts(name) if p not in policy_names()]
    if unknown:
        raise UsageError(
            f"unknown cache policy {unknown[0]!r}",
            fix=f"use one of {' | '.join(policy_names())}, or a KV policy joined with flowcache by '+'",
        )


def parse_cache_params(cache: str, items: list[str]) -> dict[str, object]:
    """`--cache-param KEY=VALUE` items -> keyword parameters of the policy (int, float or text values); a
    malformed item or a parameter the policy does not take is a UsageError (exit 2)."""
    from genmotion.cache.compose import policy_parameters

    accepted, params = policy_parameters(cache) - {"embed"}, {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise UsageError(f"--cache-param {item!r} is not KEY=VALUE", fix="write e.g. --cache-param thresh=0.1")
        if key not in accepted:
            raise UsageError(
                f"cache policy {cache!r} takes no parameter {key!r}", fix=f"use one of {', '.join(sorted(accepted))}"
            )
        params[key] = _number_or_text(text.strip())
    return params


def _number_or_text(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _run(
    prompt: str, frames: int, fps: float, seed: int, guidance: float, sampling: dict[str, object],
    schedule: list[tuple[int, str]], ckpt: str, device: str, threads: int, out: Path,
) -> None:  # fmt: skip
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import genmotion
    from genmotion.io import open_video_writer
    from genmotion.runtime import configure
    from genmotion.video.pipeline import check_prompt_schedule

    check_prompt_schedule(prompt, schedule)
    runtime = configure(device, "auto", threads)
    pipe = genmotion.load(ckpt, device=runtime.device, dtype=runtime.dtype)
    flow = hasattr(pipe, "frame_layout")  # the causal flow pipeline: cache policy and steps, no token sampling
    kwargs = {k: v for k, v in sampling.items() if (k in _FLOW_ONLY) == flow}
    if flow:
        params = cast(dict[str, Any], kwargs.pop("cache_params"))
        kwargs["cache"] = pipe.policy(str(kwargs["cache"]), **params)
    stream = pipe.stream(
        prompt, num_frames=frames, seed=seed, guidance_scale=guidance, prompt_schedule=schedule, **kwargs
    )
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    ]
    writer = open_video_writer(out, fps)
    try:
        with writer, Progress(*columns, transient=False) as progress:
            task = progress.add_task("video", total=frames, rate="")
            for chunk in stream:
                writer.write(chunk.frames)
                done = chunk.index + chunk.frames.shape[0]
                progress.update(task, completed=done, rate=f"{done / max(chunk.seconds, 1e-9):.1f} frames/s")
    except KeyboardInterrupt:
        saved = f"the {writer.frames_written} frames made so far are at {writer.partial_path}"
        raise Interrupted("interrupted", why=saved if writer.partial_path else "no frame was finished") from None
    typer.echo(f"wrote {out} ({writer.frames_written} frames, {pipe.height}x{pipe.width}, {fps:g} fps)")


def bench_video(
    json_path: Path = typer.Option(..., "--json", help="Write the results here (JSON)."),
    plot: Path | None = typer.Option(None, "--plot", help="Also draw a PNG chart here."),
    ckpt: str = typer.Option("videoar-toy", "--ckpt", help="Registry name or checkpoint directory."),
    threads: int = typer.Option(1, "--threads", help="torch intra-op threads for every measurement."),
    quick: bool = typer.Option(False, "--quick", help="A few prompts and short runs: a smoke test, not a measurement."),
) -> None:
    """Adherence on held-out paraphrases, flicker, drift over 256 frames, prompt switches, speed, cache bytes."""
    import genmotion
    from genmotion.bench.report import save_results, set_bench_threads
    from genmotion.video.bench import BenchSettings, cli_cold_start, plot_video_bench, run_video_bench, summary_line

    check_output_path(json_path.with_suffix(".mp4"))
    set_bench_threads(threads)
    pipe = genmotion.load(ckpt)
    results = run_video_bench(pipe, BenchSettings.quick() if quick else BenchSettings())
    model = "ca2vdm" if hasattr(pipe, "frame_layout") else "videoar"
    results["speed"].update(cli_cold_start(ckpt, model, frames=4 if quick else 16))
    save_results(results, json_path, plot, plot_video_bench)
    typer.echo(summary_line(results))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `genmotion video` and `genmotion bench video`."""
    app.command("video")(video)
    bench_app.command("video")(bench_video)
