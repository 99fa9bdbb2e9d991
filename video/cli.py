"""`genmotion video` (text to video, frames written as they are made) and `genmotion bench video`.

Thin: every argument is checked before any model is loaded (exit 2 for bad flags, 3 for a bad output
path), then the pipeline streams frames into a genmotion.io writer. torch is imported inside the bodies
so `genmotion --help` stays fast.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

import typer

from genmotion.cli.bench_options import BenchCkpt, BenchJson, BenchPlot, BenchQuick, BenchThreads, check_bench_flags
from genmotion.cli.checks import (
    check_checkpoint_kind,
    check_device_name,
    check_number,
    check_video_output,
    warn_long_prompts,
)
from genmotion.errors import UsageError

__all__ = ["check_output_path", "parse_prompt_at", "register"]


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


def check_output_path(path: str | Path, force: bool = False) -> None:
    """Raise before any work when `path` cannot be written (see `genmotion.cli.checks.check_video_output`)."""
    check_video_output(path, force)


def video(
    prompt: str = typer.Option(..., "--prompt", "-p", help="What the video shows."),
    frames: int = typer.Option(48, "--frames", "-n", help="Number of frames."),
    fps: float = typer.Option(12.0, "--fps", help="Frames per second of the file."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    guidance: float | None = typer.Option(
        None,
        "--guidance",
        help="Classifier-free guidance scale of every frame (1 = off) "
        "[the checkpoint's recommendation: videoar-toy 2 with frame 0 at 1.5, ca2vdm-toy 3].",
    ),
    temperature: float | None = typer.Option(
        None, "--temperature", help="VideoAR sampling temperature [1; 0 = greedy]."
    ),
    top_k: int | None = typer.Option(None, "--top-k", help="VideoAR: keep the k most likely codes [0 = off]."),
    top_p: float | None = typer.Option(None, "--top-p", help="VideoAR: nucleus sampling mass [0 = off]."),
    copy_threshold: float | None = typer.Option(
        None,
        "--copy-threshold",
        help="VideoAR: a token keeps the previous frame's code where the model gives that code at least this "
        "probability [the checkpoint's: videoar-toy 0.5; 0 = off].",
    ),
    copy_scales: int | None = typer.Option(
        None,
        "--copy-scales",
        help="VideoAR: the copy rule acts on this many of the coarsest scales [the checkpoint's: videoar-toy 2; "
        "0 = every scale].",
    ),
    prompt_at: list[str] = typer.Option([], "--prompt-at", help='Change the prompt from a frame on: 32="..."'),
    model: str | None = typer.Option(None, "--model", "-m", help="videoar or ca2vdm (sets the default --ckpt)."),
    ckpt: str | None = typer.Option(None, "--ckpt", help="Registry name or checkpoint directory."),
    cache: str | None = typer.Option(None, "--cache", help="ca2vdm cache policy [shared], e.g. flowcache+forcing-kv."),
    cache_param: list[str] = typer.Option(
        [],
        "--cache-param",
        help="ca2vdm cache policy parameter, e.g. thresh=0.1, order=1, rule=input, correct=false or "
        "queries=denoising (repeatable).",
    ),
    steps: int | None = typer.Option(None, "--steps", help="ca2vdm denoising steps per chunk [10]."),
    reencode_context: bool | None = typer.Option(
        None,
        "--reencode-context/--no-reencode-context",
        help="ca2vdm: commit each chunk to the context as its frames encoded again [on].",
    ),
    height: int | None = typer.Option(
        None, "--height", help="Frame height; only the model's own size (64 for the defaults)."
    ),
    width: int | None = typer.Option(
        None, "--width", help="Frame width; only the model's own size (64 for the defaults)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    threads: int = typer.Option(1, "--threads", help="torch threads (small per-frame ops: 1 is fastest)."),
    out: str = typer.Option("video.mp4", "--out", "-o", help="out.mp4, out.gif or out/ (PNG frames)."),
    force: bool = typer.Option(
        False, "--force", help="Write a PNG folder over a folder genmotion did not write (moved aside)."
    ),
) -> None:
    """Text to video with VideoAR (next-frame x next-scale) or the Ca2-VDM causal flow model, written as made."""
    if not prompt.strip():
        raise UsageError("the prompt is empty", fix='pass --prompt "a red ball bouncing to the left"')
    for flag, value, bounds in (
        ("--frames", frames, {"low": 1}),
        ("--fps", fps, {"low": 0, "low_open": True, "high": 1000}),
        ("--guidance", guidance, {"low": 0}),
        ("--temperature", temperature, {"low": 0}),
        ("--top-k", top_k, {"low": 0}),
        ("--top-p", top_p, {"low": 0, "high": 1}),
        ("--copy-threshold", copy_threshold, {"low": 0, "high": 1}),
        ("--copy-scales", copy_scales, {"low": 0}),
        ("--steps", steps, {"low": 1, "high": 1000}),
        ("--threads", threads, {"low": 1}),
    ):
        check_number(flag, value, **bounds)  # type: ignore[arg-type]
    check_device_name(device)
    schedule = _prompt_schedule(prompt_at, frames)
    check_output_path(out, force)
    ckpt, kind = _checkpoint(model, ckpt, height, width)
    sampling = _sampling_flags(
        kind, temperature, top_k, top_p, (copy_threshold, copy_scales), cache, cache_param, steps, reencode_context
    )
    warn_long_prompts([prompt, *(text for _, text in schedule)])
    _run(prompt, frames, fps, seed, guidance, sampling, schedule, ckpt, device, threads, Path(out), force)


def _checkpoint(model: str | None, ckpt: str | None, height: int | None, width: int | None) -> tuple[str, str]:
    """--model/--ckpt -> (checkpoint, its kind), refusing a disagreement and sizes the model does not make."""
    if model is not None and model not in DEFAULT_CKPT:
        raise UsageError(f"unknown --model {model!r}", fix=f"use one of {', '.join(DEFAULT_CKPT)}")
    ckpt = ckpt or DEFAULT_CKPT[model or "videoar"]
    kind = check_checkpoint_kind(ckpt, tuple(DEFAULT_CKPT), "video")
    if model is not None and model != kind:
        raise UsageError(f"--model {model} and --ckpt {ckpt} (a {kind} checkpoint) disagree", fix="drop one of them")
    check_frame_size(ckpt, height, width)
    return ckpt, kind


def _prompt_schedule(prompt_at: list[str], frames: int) -> list[tuple[int, str]]:
    """`--prompt-at F="..."` flags -> [(frame, prompt)], each starting inside the clip."""
    schedule = parse_prompt_at(prompt_at)
    for frame, _ in schedule:
        if frame >= frames:
            raise UsageError(
                f"--prompt-at {frame}=... starts after the last frame ({frames - 1})",
                fix=f"use a frame below --frames {frames}, or ask for more frames",
            )
    return schedule


def _sampling_flags(
    kind: str, temperature: float | None, top_k: int | None, top_p: float | None,
    copy: tuple[float | None, int | None], cache: str | None, cache_param: list[str], steps: int | None,
    reencode_context: bool | None,
) -> dict[str, object]:  # fmt: skip
    """The sampling keywords of the chosen model (`copy`: the copy rule's threshold and scales); a flag of the
    other model is an error, not ignored."""
    copy_threshold, copy_scales = copy
    given = {"--temperature": temperature, "--top-k": top_k, "--top-p": top_p, "--copy-threshold": copy_threshold,
             "--copy-scales": copy_scales}  # fmt: skip
    flow_given = {"--cache": cache, "--cache-param": cache_param or None, "--steps": steps,
                  "--(no-)reencode-context": reencode_context}  # fmt: skip
    wrong = [f for f, v in (flow_given if kind == "videoar" else given).items() if v is not None]
    if wrong:
        other = "ca2vdm" if kind == "videoar" else "videoar"
        raise UsageError(
            f"{' and '.join(wrong)} {'does' if len(wrong) == 1 else 'do'} not apply to {kind} checkpoints",
            why=f"only {other} takes {'it' if len(wrong) == 1 else 'them'}",
            fix=f"drop {'it' if len(wrong) == 1 else 'them'}, or pass --model {other}",
        )
    if kind == "videoar":
        return {
            "temperature": 1.0 if temperature is None else temperature, "top_k": top_k or 0, "top_p": top_p or 0.0,
            "copy_threshold": copy_threshold, "copy_scales": copy_scales,  # None: the checkpoint's recommendation
        }  # fmt: skip
    name = cache or "shared"
    check_cache_name(name)
    return {
        "cache": name, "cache_params": parse_cache_params(name, cache_param), "num_steps": steps or 10,
        "reencode_context": True if reencode_context is None else reencode_context,
    }  # fmt: skip


DEFAULT_CKPT = {"videoar": "videoar-toy", "ca2vdm": "ca2vdm-toy"}


def check_frame_size(ckpt: str, height: int | None, width: int | None) -> None:
    """UsageError (exit 2) when --height/--width ask for a size the checkpoint's model does not make (both video
    models make square frames of their tokenizer's size; nothing is resized behind the user's back)."""
    if height is None and width is None:
        return
    from genmotion.checkpoint import read_checkpoint_config
    from genmotion.registry import resolve

    size = int(read_checkpoint_config(resolve(ckpt))["model"]["tokenizer"]["image_size"])
    for flag, value in (("--height", height), ("--width", width)):
        if value is not None and value != size:
            raise UsageError(
                f"{flag} {value}: {ckpt} makes {size}x{size} frames only",
                why="the model generates at its tokenizer's resolution; other sizes would be resized, not generated",
                fix=f"drop {flag} or pass {flag} {size}; resize the video afterwards if you need another size",
            )


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
        params[key] = _parse_param(key, text.strip())
    return params


_TEXT_PARAMS = {"rule", "queries"}  # the cache parameters that take a word; every other one a finite number
_FLAG_PARAMS = {"correct"}  # the cache parameters that are on or off
_FLAGS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def _parse_param(key: str, text: str) -> object:
    if key in _TEXT_PARAMS:
        return text
    if key in _FLAG_PARAMS:
        if text.lower() not in _FLAGS:
            raise UsageError(f"--cache-param {key}={text} is not on or off", fix=f"write --cache-param {key}=true")
        return _FLAGS[text.lower()]
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        if not math.isfinite(value):
            break
        return value
    raise UsageError(f"--cache-param {key}={text} is not a number", fix=f"write e.g. --cache-param {key}=0.1")


def _run(
    prompt: str, frames: int, fps: float, seed: int, guidance: float | None, sampling: dict[str, object],
    schedule: list[tuple[int, str]], ckpt: str, device: str, threads: int, out: Path, force: bool,
) -> None:  # fmt: skip
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import genmotion
    from genmotion.io import open_video_writer
    from genmotion.pipeline import FlowPolicyHost, FrameStreamer
    from genmotion.runtime import configure
    from genmotion.video.streamer import check_prompt_schedule

    check_prompt_schedule(prompt, schedule)
    runtime = configure(device, "auto", threads)
    loaded = genmotion.load(ckpt, device=runtime.device, dtype=runtime.dtype)
    if not isinstance(loaded, FrameStreamer):
        raise UsageError(f"--ckpt {ckpt} does not make frames", fix="pick a videoar or ca2vdm checkpoint")
    pipe: Any = loaded
    kwargs = dict(sampling)
    if isinstance(pipe, FlowPolicyHost):  # the causal flow pipeline builds its cache policy from the flags
        params = cast(dict[str, Any], kwargs.pop("cache_params"))
        kwargs["cache"] = pipe.policy(str(kwargs["cache"]), **params)
    if guidance is not None:
        kwargs["guidance_scale"] = guidance
    stream = pipe.stream(prompt, num_frames=frames, seed=seed, prompt_schedule=schedule, **kwargs)
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    ]
    with open_video_writer(out, fps, force=force) as writer, Progress(*columns, transient=False) as progress:
        task = progress.add_task("video", total=frames, rate="")
        for chunk in stream:
            writer.write(chunk.frames)
            done = chunk.index + chunk.frames.shape[0]
            progress.update(task, completed=done, rate=f"{done / max(chunk.seconds, 1e-9):.1f} frames/s")
    typer.echo(f"wrote {out} ({writer.frames_written} frames, {pipe.height}x{pipe.width}, {fps:g} fps)")


def bench_video(
    json_path: BenchJson,
    plot: BenchPlot = None,
    ckpt: BenchCkpt = "videoar-toy",
    threads: BenchThreads = 1,
    quick: BenchQuick = False,
) -> None:
    """Adherence on held-out paraphrases, flicker, drift over 256 frames, prompt switches, speed, cache bytes."""
    check_bench_flags(json_path, plot, threads)
    check_checkpoint_kind(ckpt, tuple(DEFAULT_CKPT), "bench video")
    import genmotion
    from genmotion.bench.report import save_results, set_bench_threads
    from genmotion.pipeline import FlowPolicyHost
    from genmotion.video.bench import BenchSettings, cli_cold_start, plot_video_bench, run_video_bench, summary_line

    set_bench_threads(threads)
    pipe = genmotion.load(ckpt)
    results = run_video_bench(pipe, BenchSettings.quick() if quick else BenchSettings())
    model = "ca2vdm" if isinstance(pipe, FlowPolicyHost) else "videoar"
    results["speed"].update(cli_cold_start(ckpt, model, frames=4 if quick else 16))
    save_results(results, json_path, plot, plot_video_bench)
    typer.echo(summary_line(results))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `genmotion video`, `genmotion convert keyframe|decoder` and `genmotion bench video`."""
    from genmotion.cli.app import CONVERT_HELP, command_group

    app.command("video")(video)
    bench_app.command("video")(bench_video)
    convert = command_group(app, "convert", CONVERT_HELP)
    convert.command("keyframe")(convert_keyframe)
    convert.command("decoder")(convert_decoder)


def convert_keyframe(
    video_ckpt: str = typer.Option(
        ..., "--video", help="The videoar or ca2vdm checkpoint (registry name or directory)."
    ),
    keyframe: str = typer.Option(
        ..., "--keyframe", help="videoar: one trained on single frames; ca2vdm: any videoar model of its frame size."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint directory to write."),
    force: bool = typer.Option(False, "--force", help="Write over a folder genmotion did not write (moved aside)."),
) -> None:
    """One checkpoint whose start is drawn by the keyframe: a videoar video's frame 0 by the keyframe's
    transformer, a ca2vdm video's first chunk by the whole videoar keyframe model."""
    from genmotion.cli.checks import check_folder_output

    check_checkpoint_kind(video_ckpt, ("videoar", "ca2vdm"), "convert keyframe --video")
    check_checkpoint_kind(keyframe, ("videoar",), "convert keyframe --keyframe")
    check_folder_output(out, "checkpoint", force)
    from genmotion.video.keyframe import convert_keyframe as convert

    path = convert(video_ckpt, keyframe, out, force=force)
    typer.echo(f"wrote {path} (use it with: genmotion video --ckpt {path} -p ...)")


def convert_decoder(
    ckpt: str = typer.Option(..., "--ckpt", help="The videoar or ca2vdm checkpoint (registry name or directory)."),
    decoder: str = typer.Option(
        ..., "--decoder", help="A decoder-only fine-tune of its tokenizer (model.train=decoder; a run's model/)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint directory to write."),
    force: bool = typer.Option(False, "--force", help="Write over a folder genmotion did not write (moved aside)."),
) -> None:
    """The checkpoint with another decoder for the same tokens (a sharper one, or one that makes larger frames,
    model.output_size); a ca2vdm's first-chunk model gets it too."""
    from genmotion.cli.checks import check_folder_output

    check_checkpoint_kind(ckpt, ("videoar", "ca2vdm"), "convert decoder --ckpt")
    check_checkpoint_kind(decoder, ("video-tokenizer",), "convert decoder --decoder")
    check_folder_output(out, "checkpoint", force)
    from genmotion.video.decoder_swap import convert_decoder as convert

    path = convert(ckpt, decoder, out, force=force)
    typer.echo(f"wrote {path} (use it with: genmotion video --ckpt {path} -p ...)")
