"""What a 2-D toy clip contains (`ClipSpec` of `ObjectSpec`s), and a sampler of random specs that
draws every number from an explicit `torch.Generator`, so a seed fixes the clip.

A spec is resolution- and length-free: positions and speeds are fractions of the frame, so the same
spec renders at 32 or 256 px and for 16 or 256 frames (see `render.py` for how motion continues).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

import torch

from genmotion.data.toyworld.vocab import (
    BACKGROUNDS,
    BOUNCE_DRIFT_SPEED,
    BOUNCE_PERIOD,
    COLOURS,
    DIRECTIONAL_MOTIONS,
    DIRECTIONAL_SPEED,
    GROWTH_PERIOD,
    GROWTH_RANGE,
    HEADINGS,
    MOTIONS,
    SHAPES,
    SIZE_FRACTION,
    SIZES,
    Background,
    Colour,
    Heading,
    Motion,
    Shape,
    Size,
    check_name,
)
from genmotion.errors import UsageError

__all__ = [
    "MAX_OBJECTS",
    "ClipSpec",
    "ObjectSpec",
    "place_apart",
    "sample_background",
    "sample_clip_spec",
    "sample_clip_specs",
    "sample_object_spec",
]

MAX_OBJECTS = 2
_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True)
class ObjectSpec:
    """One object of a clip.

    start: (x, y) of the bounding-box centre at frame 0, as fractions of width and height (y down).
    speed: frame fractions per frame: along the motion for left/right/up/down, the horizontal drift
        of a bouncing object; unused by still/grow/shrink.
    heading: the drift direction of a bouncing object.
    period: frames per hop (bounce) or per grow/shrink cycle.
    phase: where in its cycle the object is at frame 0, in [0, 1).
    """

    shape: Shape
    colour: Colour
    size: Size
    motion: Motion
    start: tuple[float, float] = (0.5, 0.5)
    speed: float = 0.0
    heading: Heading = "right"
    period: float = 32.0
    phase: float = 0.0

    def __post_init__(self) -> None:
        check_name("shape", self.shape, SHAPES)
        check_name("colour", self.colour, COLOURS)
        check_name("size", self.size, SIZES)
        check_name("motion", self.motion, MOTIONS)
        check_name("heading", self.heading, HEADINGS)
        if len(self.start) != 2 or not all(0.0 <= v <= 1.0 for v in self.start):
            raise UsageError(f"start must be (x, y) in [0, 1], got {self.start}", fix="give frame fractions")
        if self.speed < 0 or self.period <= 0 or not 0.0 <= self.phase < 1.0:
            raise UsageError(
                f"bad object timing: speed={self.speed}, period={self.period}, phase={self.phase}",
                fix="use speed >= 0, period > 0 and phase in [0, 1)",
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the `spec` field of a shard's JSONL)."""
        out = asdict(self)
        out["start"] = list(self.start)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectSpec:
        fields = dict(data)
        fields["start"] = tuple(fields.get("start", (0.5, 0.5)))
        return cls(**fields)


@dataclass(frozen=True, kw_only=True)
class ClipSpec:
    """A clip: one or two objects (distinct colours; later objects drawn on top) over a background."""

    objects: tuple[ObjectSpec, ...]
    background: Background = "plain dark"

    def __post_init__(self) -> None:
        check_name("background", self.background, BACKGROUNDS)
        if not 1 <= len(self.objects) <= MAX_OBJECTS:
            raise UsageError(
                f"a clip holds 1 to {MAX_OBJECTS} objects, got {len(self.objects)}",
                fix=f"give between 1 and {MAX_OBJECTS} ObjectSpecs",
            )
        colours = [o.colour for o in self.objects]
        if len(set(colours)) != len(colours):
            raise UsageError(
                f"objects of one clip must differ in colour, got {colours}",
                why="the detector tells objects apart by colour",
                fix="give each object its own colour",
            )

    def to_dict(self) -> dict[str, Any]:
        return {"objects": [o.to_dict() for o in self.objects], "background": self.background}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClipSpec:
        return cls(objects=tuple(ObjectSpec.from_dict(o) for o in data["objects"]), background=data["background"])


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _choice(generator: torch.Generator, options: Sequence[_T]) -> _T:
    return options[int(torch.randint(len(options), (), generator=generator))]


def sample_object_spec(
    generator: torch.Generator,
    *,
    shape: Shape | None = None,
    colour: Colour | None = None,
    size: Size | None = None,
    motion: Motion | None = None,
    heading: Heading | None = None,
    exclude_colours: Sequence[str] = (),
) -> ObjectSpec:
    """A random object; any attribute given is kept as given.

    The same number of random draws is made whatever is fixed, so fixing one attribute leaves the
    others as the seed would have drawn them. The start keeps the object inside the frame at frame 0
    (at its largest scale for grow/shrink); a bouncing object starts anywhere along its hop.
    """
    colours = [c for c in COLOURS if c not in exclude_colours]
    if not colours:
        raise UsageError("no colour left to draw", fix="exclude fewer colours")
    drawn_shape = _choice(generator, SHAPES)
    drawn_colour = _choice(generator, colours)
    drawn_size = _choice(generator, SIZES)
    drawn_motion = _choice(generator, MOTIONS)
    drawn_heading = _choice(generator, HEADINGS)
    u_x, u_y, u_speed, u_period, u_phase = (float(v) for v in torch.rand(5, generator=generator))
    shape, colour, size = shape or drawn_shape, colour or drawn_colour, size or drawn_size
    motion, heading = motion or drawn_motion, heading or drawn_heading

    half = SIZE_FRACTION[size] * (GROWTH_RANGE[1] if motion in ("grow", "shrink") else 1.0)  # see _footprint
    start = (half + (1 - 2 * half) * u_x, half + (1 - 2 * half) * u_y)
    speed, period = 0.0, 32.0
    if motion in DIRECTIONAL_MOTIONS:
        speed = DIRECTIONAL_SPEED[0] + (DIRECTIONAL_SPEED[1] - DIRECTIONAL_SPEED[0]) * u_speed
    elif motion == "bounce":
        speed = BOUNCE_DRIFT_SPEED[0] + (BOUNCE_DRIFT_SPEED[1] - BOUNCE_DRIFT_SPEED[0]) * u_speed
        period = BOUNCE_PERIOD[0] + (BOUNCE_PERIOD[1] - BOUNCE_PERIOD[0]) * u_period
    elif motion in ("grow", "shrink"):
        period = GROWTH_PERIOD[0] + (GROWTH_PERIOD[1] - GROWTH_PERIOD[0]) * u_period
    return ObjectSpec(
        shape=shape,
        colour=colour,
        size=size,
        motion=motion,
        start=(round(start[0], 6), round(start[1], 6)),
        speed=round(speed, 6),
        heading=heading,
        period=round(period, 6),
        phase=math.floor(u_phase * 1e6) / 1e6,
    )


def _footprint(obj: ObjectSpec) -> float:
    """Largest half-extent of an object (frame fraction)."""
    return SIZE_FRACTION[obj.size] * (GROWTH_RANGE[1] if obj.motion in ("grow", "shrink") else 1.0)


def _overlap(a: ObjectSpec, b: ObjectSpec) -> bool:
    return max(abs(a.start[0] - b.start[0]), abs(a.start[1] - b.start[1])) <= _footprint(a) + _footprint(b)


def place_apart(obj: ObjectSpec, others: Sequence[ObjectSpec], generator: torch.Generator) -> ObjectSpec | None:
    """Redraw the start of an object that never moves (still/grow/shrink) until it does not overlap
    another such object (up to 32 tries), so neither hides the other for a whole clip; None if no
    start works. Moving objects may cross; the detector skips the frames where objects touch."""
    static = ("still", "grow", "shrink")
    fixed = [o for o in others if o.motion in static]
    if obj.motion not in static or not fixed:
        return obj
    half = _footprint(obj)
    for _ in range(32):
        if not any(_overlap(obj, o) for o in fixed):
            return obj
        u_x, u_y = (float(v) for v in torch.rand(2, generator=generator))
        obj = replace(obj, start=(round(half + (1 - 2 * half) * u_x, 6), round(half + (1 - 2 * half) * u_y, 6)))
    return obj if not any(_overlap(obj, o) for o in fixed) else None


def sample_background(generator: torch.Generator) -> Background:
    """A background drawn uniformly."""
    return _choice(generator, BACKGROUNDS)


def sample_clip_spec(
    generator: torch.Generator,
    *,
    num_objects: int | None = None,
    two_object_probability: float = 0.3,
    background: Background | None = None,
) -> ClipSpec:
    """A random clip: one object, or two with probability `two_object_probability`, distinct colours."""
    drawn_background = sample_background(generator)
    two = float(torch.rand((), generator=generator)) < two_object_probability
    count = num_objects if num_objects is not None else (2 if two else 1)
    if not 1 <= count <= MAX_OBJECTS:
        raise UsageError(f"num_objects must be 1..{MAX_OBJECTS}, got {count}")
    objects: list[ObjectSpec] = []
    while len(objects) < count:  # a pair of static objects that cannot be kept apart is redrawn
        placed = place_apart(
            sample_object_spec(generator, exclude_colours=[o.colour for o in objects]), objects, generator
        )
        if placed is not None:
            objects.append(placed)
    return ClipSpec(objects=tuple(objects), background=background or drawn_background)


def sample_clip_specs(count: int, generator: torch.Generator, **kwargs: Any) -> list[ClipSpec]:
    """`count` clips drawn one after another from `generator` (keywords as `sample_clip_spec`)."""
    return [sample_clip_spec(generator, **kwargs) for _ in range(count)]
