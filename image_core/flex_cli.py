"""The FlexVAR side of `genmotion image`: `--steps N`, `--schedule 1,2,4,8` and `--size PX`, checked before any
model loads (exit 2 with one line saying why), and the run itself. Torch is imported only inside the run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from genmotion.cli.checks import check_number
from genmotion.errors import UsageError

__all__ = ["FlexRequest", "check_flex_flags", "run_flex_image"]


@dataclass(frozen=True)
class FlexRequest:
    """What a FlexVAR call was asked for: a number of steps or a schedule of sides (or neither), an image size."""

    num_steps: int | None
    schedule: tuple[int, ...] | None
    image_size: int | None


def check_flex_flags(
    kind: str, steps: int | None, schedule: str | None, size: int | None, *, other_flags: dict[str, bool]
) -> FlexRequest | None:
    """`--steps/--schedule/--size` checked for a checkpoint of `kind`: a FlexRequest for flexvar, None for the rest.

    `other_flags` names the `genmotion image` flags given that FlexVAR does not take (KV policies, in-painting,
    TTS); any of them with a flexvar checkpoint, or a FlexVAR flag with another kind, is a UsageError.
    """
    from genmotion.image_core.flex_sampler import parse_schedule

    given = [
        flag for flag, value in (("--steps", steps), ("--schedule", schedule), ("--size", size)) if value is not None
    ]
    if kind != "flexvar":
        if given:
            raise UsageError(
                f"{given[0]} needs a FlexVAR model",
                why=f"a {kind!r} model samples a fixed schedule",
                fix="pass --model flexvar, or drop " + " and ".join(given),
            )
        return None
    refused = [flag for flag, on in other_flags.items() if on]
    if refused:
        raise UsageError(f"{refused[0]} does not apply to FlexVAR", fix=f"drop {refused[0]} with --model flexvar")
    if steps is not None and schedule is not None:
        raise UsageError("pass --steps or --schedule, not both", fix="--steps 4, or --schedule 1,2,4,8")
    check_number("--steps", steps, low=1, high=64)
    check_number("--size", size, low=1, high=4096)
    return FlexRequest(steps, parse_schedule(schedule) if schedule is not None else None, size)


def run_flex_image(
    pipe: Any,
    labels: list[int],
    num: int,
    settings: dict[str, Any],
    seed: int,
    request: FlexRequest,
    out: Path,
    progress: Any,
    write_grid: Any,
) -> None:
    """Sample `num` images of `labels` (cycled) over the requested schedule and write them as one grid."""
    sizes = pipe.schedule(num_steps=request.num_steps, schedule=request.schedule, image_size=request.image_size)
    stream = pipe.stream(labels, num_images=num, seed=seed, schedule=sizes, image_size=request.image_size, **settings)
    images = None
    with progress() as bar:
        task = bar.add_task("scales", total=len(sizes))
        for chunk in stream:
            bar.update(task, completed=chunk.index + 1)
            images = chunk.images if chunk.is_last else images
    assert images is not None
    write_grid(images, out)
    names = ", ".join(pipe.class_names[i] if pipe.class_names else str(i) for i in dict.fromkeys(labels))
    side = sizes[-1] * pipe.downsample
    typer.echo(
        f"wrote {out} ({num} image{'s' if num > 1 else ''} of {names}, {side}x{side}; "
        f"FlexVAR schedule {','.join(map(str, sizes))})"
    )
