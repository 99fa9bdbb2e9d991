"""`genmotion toyworld`: render a toy clip that matches a prompt, or write a captioned dataset shard.

    genmotion toyworld --prompt "a red ball bouncing to the left" --frames 48 -o ball.mp4
    genmotion toyworld --dataset 1000 -o shard/ [--split eval] [--format npz]
    genmotion bench toyworld --json toyworld.json --plot toyworld.png

torch is imported inside the command only, so `genmotion --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import typer

from genmotion.cli.bench_options import ConfigBench, config_bench_command
from genmotion.cli.checks import check_folder_output, check_number, check_video_output
from genmotion.errors import UsageError

if TYPE_CHECKING:  # torch is imported by the command bodies only
    from genmotion.data.toyworld.spec import ClipSpec

__all__ = ["bench_toyworld", "register", "toyworld"]

SHARD_KIND = "toyworld-shard"  # the output kind recorded in a shard folder's marker


def _describe(spec: ClipSpec) -> str:
    parts = []
    for o in spec.objects:
        motion = f"bounce {o.heading}" if o.motion == "bounce" else o.motion
        parts.append(f"{o.size} {o.colour} {o.shape}, {motion}")
    return f"{' + '.join(parts)}; {spec.background}"


def toyworld(
    out_text: str = typer.Option(
        ..., "--out", "-o", help="Clip file (.mp4, .gif, or a folder/ for PNGs), or the shard folder."
    ),
    prompt: str | None = typer.Option(None, "--prompt", help="What the clip shows, e.g. 'a blue square moving up'."),
    dataset: int | None = typer.Option(None, "--dataset", help="Write a shard of N captioned clips instead."),
    frames: int = typer.Option(16, "--frames", help="Frames per clip."),
    size: int = typer.Option(64, "--size", help="Height and width in pixels (even)."),
    seed: int = typer.Option(0, "--seed", help="Fixes everything the prompt leaves open."),
    split: str = typer.Option("train", "--split", help="Dataset captions: train, or eval (held-out templates)."),
    fmt: str = typer.Option("mp4", "--format", help="Dataset clip format: mp4 or npz (frames + masks)."),
    fps: int = typer.Option(8, "--fps", help="Frames per second of written videos."),
    force: bool = typer.Option(False, "--force", help="Write over a folder genmotion did not write (moved aside)."),
) -> None:
    """Render a toy-world clip matching a prompt, or write a captioned dataset shard (--dataset N)."""
    out = Path(out_text)
    if (prompt is None) == (dataset is None):
        raise UsageError("give either --prompt TEXT or --dataset N", fix="e.g. --prompt 'a red ball moving left'")
    if frames < 1 or fps < 1:
        raise UsageError(f"--frames and --fps must be >= 1, got {frames} and {fps}")
    check_number("--frames", frames, high=100_000)
    check_number("--size", size, high=4096)
    check_number("--seed", seed, low=0)
    if size < 16 or size % 2:
        raise UsageError(f"--size must be an even number >= 16, got {size}", why="H.264 yuv420p needs even sizes")
    if prompt is not None:
        if not prompt.strip():
            raise UsageError("the prompt is empty", fix="e.g. --prompt 'a red ball moving left'")
        check_video_output(out_text, force)
        _render_prompt(prompt, out, frames, size, seed, fps, force)
        return
    assert dataset is not None
    if dataset < 1:
        raise UsageError(f"--dataset must be >= 1, got {dataset}")
    if split not in ("train", "eval") or fmt not in ("mp4", "npz"):
        raise UsageError(f"bad --split {split!r} or --format {fmt!r}", fix="use --split train|eval, --format mp4|npz")
    check_folder_output(out, SHARD_KIND, force)
    from genmotion.data.toyworld.dataset import write_shard
    from genmotion.io.atomic import atomic_folder

    with atomic_folder(out, SHARD_KIND, force) as tmp:
        index = write_shard(
            dataset,
            tmp,
            num_frames=frames,
            height=size,
            width=size,
            split=cast("Literal['train', 'eval']", split),
            seed=seed,
            fmt=cast("Literal['mp4', 'npz']", fmt),
            fps=fps,
        )
    shown = out / Path(index).name
    typer.echo(f"wrote {dataset} clips ({frames} frames, {size}x{size}, {split} captions) and {shown}")


def _render_prompt(prompt: str, out: Path, frames: int, size: int, seed: int, fps: int, force: bool) -> None:
    import torch

    from genmotion.data.toyworld.captions import spec_from_prompt
    from genmotion.data.toyworld.render import render_clips
    from genmotion.io.video_out import open_video_writer

    spec = spec_from_prompt(prompt, torch.Generator().manual_seed(seed))
    clip, _ = render_clips([spec], frames, size, size)
    with open_video_writer(out, fps, force=force) as writer:
        writer.write(clip[0])
    typer.echo(f"wrote {out}: {frames} frames of {size}x{size} ({_describe(spec)})")


def _toyworld_bench() -> ConfigBench:
    from genmotion.data.toyworld.bench import ToyworldBenchConfig, plot_toyworld_bench, run_toyworld_bench

    return ConfigBench(run_toyworld_bench, ToyworldBenchConfig, plot_toyworld_bench, _toyworld_summary)


def _toyworld_summary(results: Mapping[str, Any]) -> str:
    speed = ", ".join(f"{k} {v:.1f}" for k, v in results["speed_ms"].items())
    return f"{speed}; accuracy (worst attribute): " + ", ".join(_worst(k, v) for k, v in results["accuracy"].items())


bench_toyworld = config_bench_command(
    "Toy-world render speed (2-D clips, 3-D views), detector speed and accuracy (clean, degraded, 2 objects).",
    _toyworld_bench,
)


def _worst(name: str, value: object) -> str:
    """`clean_32px 0.950 (shape)`; an attribute with no samples (None or NaN) is reported n/a, never 0."""
    scores = value if isinstance(value, dict) else {"": value}
    known = {k: float(v) for k, v in scores.items() if isinstance(v, (int, float)) and v == v}
    if not known:
        return f"{name} n/a"
    attr = min(known, key=lambda k: known[k])
    return f"{name} {known[attr]:.3f}" + (f" ({attr})" if attr else "")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Attach `genmotion toyworld` to the app and `genmotion bench toyworld` to the bench group."""
    app.command("toyworld")(toyworld)
    bench_app.command("toyworld")(bench_toyworld)
