"""The closed vocabulary of the 2-D toy world: shapes, colours, motions, sizes, backgrounds; the numbers
that make them look and move the way the detector expects (sizes are fractions of the frame); and the
lexicon of phrases that name them in captions and prompts.

The palette and the background colours are chosen far apart in RGB (>= 85 apart, checked by a test), so
the detector can tell an object from any background by the nearest colour, even on noisy frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from genmotion.errors import UsageError

__all__ = [
    "BACKGROUNDS",
    "BACKGROUND_COLOURS",
    "BOUNCE_DRIFT_SPEED",
    "BOUNCE_HEIGHT",
    "BOUNCE_PERIOD",
    "CHECKER_CELLS",
    "COLOURS",
    "DIRECTIONAL_MOTIONS",
    "DIRECTIONAL_SPEED",
    "GROWTH_PERIOD",
    "GROWTH_RANGE",
    "HEADINGS",
    "LEXICON",
    "MOTIONS",
    "PALETTE",
    "SHAPES",
    "SIZES",
    "SIZE_FRACTION",
    "SIZE_THRESHOLD",
    "Background",
    "Colour",
    "Entry",
    "Heading",
    "Motion",
    "PhraseKind",
    "Shape",
    "Size",
    "Split",
    "check_name",
    "phrases",
]

Shape = Literal["circle", "square", "triangle"]
Colour = Literal["red", "green", "blue", "yellow", "purple", "orange", "cyan", "white"]
Motion = Literal["left", "right", "up", "down", "bounce", "still", "grow", "shrink"]
Size = Literal["small", "large"]
Background = Literal["plain dark", "plain light", "gradient sky", "checker floor"]
Heading = Literal["left", "right"]

SHAPES: tuple[Shape, ...] = get_args(Shape)
COLOURS: tuple[Colour, ...] = get_args(Colour)
MOTIONS: tuple[Motion, ...] = get_args(Motion)
SIZES: tuple[Size, ...] = get_args(Size)
BACKGROUNDS: tuple[Background, ...] = get_args(Background)
HEADINGS: tuple[Heading, ...] = get_args(Heading)
DIRECTIONAL_MOTIONS: tuple[Motion, ...] = ("left", "right", "up", "down")

# Saturated object colours, >= 90 apart (the closest pair: yellow/orange).
PALETTE: dict[Colour, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "green": (40, 190, 60),
    "blue": (40, 80, 235),
    "yellow": (245, 225, 40),
    "purple": (160, 60, 210),
    "orange": (245, 135, 20),
    "cyan": (40, 215, 225),
    "white": (250, 250, 250),
}

# Muted background colours: (a, b) is a flat colour (a == b), a vertical gradient (top a, bottom b),
# or the two colours of a checkerboard.
BACKGROUND_COLOURS: dict[Background, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "plain dark": ((24, 26, 36), (24, 26, 36)),
    "plain light": ((176, 174, 166), (176, 174, 166)),
    "gradient sky": ((95, 120, 160), (172, 186, 200)),
    "checker floor": ((92, 84, 74), (134, 124, 106)),
}
CHECKER_CELLS = 8  # cells across the shorter side of the frame

# Half-extent of an object (centre to edge of its bounding box) as a fraction of min(H, W).
SIZE_FRACTION: dict[Size, float] = {"small": 0.14, "large": 0.25}
SIZE_THRESHOLD = (0.14 * 0.25) ** 0.5  # the detector's small/large boundary: the geometric mean

# grow/shrink scale the half-extent geometrically between these factors once per cycle.
GROWTH_RANGE = (0.65, 1.5)
GROWTH_PERIOD = (28.0, 36.0)  # frames per grow/shrink cycle
DIRECTIONAL_SPEED = (0.03, 0.06)  # frame fractions per frame (1-2 px/frame at 32 px)
BOUNCE_DRIFT_SPEED = (0.015, 0.035)  # horizontal drift of a bouncing object
BOUNCE_PERIOD = (9.0, 13.0)  # frames per hop; < 16 so every 16-frame window holds a full hop
BOUNCE_HEIGHT = 0.4  # hop height as a fraction of the frame height, at most


def check_name(kind: str, value: str, allowed: tuple[str, ...]) -> None:
    """Raise UsageError unless `value` is one of `allowed` (the names of a vocabulary `kind`)."""
    if value not in allowed:
        raise UsageError(
            f"unknown {kind} {value!r}",
            why=f"the toy world knows the {kind}s {', '.join(allowed)}",
            fix=f"use one of: {', '.join(allowed)}",
        )


# -- the lexicon -----------------------------------------------------------------------------------
# For every name: the phrases training captions use, the phrases kept back for evaluation (training never
# sees them), and extra spellings the parser accepts but captions never write. Held-out phrases test
# whether a text-conditioned model generalises to paraphrases; the parser knows them all. Captions with
# the rich vocabulary also write the "rich" phrases (`_RICH`): more synonyms per name, none of them held
# out, so that a model learns a name from many wordings rather than from two or three.

PhraseKind = Literal["colour", "shape", "size", "motion", "direction", "background"]
Split = Literal["train", "rich", "eval", "parse"]


@dataclass(frozen=True)
class Entry:
    """A phrase naming `value` of `kind`; `split` says who may write it (parse = the parser only)."""

    text: str
    kind: PhraseKind
    value: str
    split: Split


_TABLE: dict[PhraseKind, dict[str, dict[Split, tuple[str, ...]]]] = {
    "colour": {
        "red": {"train": ("red",), "eval": ("crimson", "scarlet")},
        "green": {"train": ("green",), "eval": ("emerald",), "parse": ("lime",)},
        "blue": {"train": ("blue",), "eval": ("cobalt",), "parse": ("navy", "azure")},
        "yellow": {"train": ("yellow",), "eval": ("lemon",), "parse": ("golden", "gold")},
        "purple": {"train": ("purple",), "eval": ("violet",), "parse": ("magenta", "lilac")},
        "orange": {"train": ("orange",), "eval": ("tangerine",), "parse": ("amber",)},
        "cyan": {"train": ("cyan",), "eval": ("turquoise",), "parse": ("aqua", "teal")},
        "white": {"train": ("white",), "eval": ("ivory",), "parse": ("snowy",)},
    },
    "shape": {
        "circle": {
            "train": ("ball", "circle", "disc", "dot"),
            "eval": ("orb", "sphere"),
            "parse": ("disk", "round shape", "balls", "circles", "discs", "disks", "dots", "orbs"),
        },
        "square": {
            "train": ("box", "square", "block"),
            "eval": ("tile", "cube"),
            "parse": ("boxes", "squares", "blocks", "tiles", "cubes", "rectangle"),
        },
        "triangle": {
            "train": ("triangle", "wedge"),
            "eval": ("pyramid", "arrowhead"),
            "parse": ("triangles", "wedges", "pyramids", "three-sided shape"),
        },
    },
    "size": {
        "small": {"train": ("small", "little"), "eval": ("tiny", "miniature"), "parse": ("smaller",)},
        "large": {"train": ("large", "big"), "eval": ("huge", "giant"), "parse": ("larger", "enormous")},
    },
    # Full participle phrases for captions; the parser also reads the bare direction words below.
    "motion": {
        "left": {
            "train": ("moving left", "sliding to the left", "drifting left", "gliding leftward"),
            "eval": ("heading west", "travelling leftwards", "making its way to the left"),
        },
        "right": {
            "train": ("moving right", "sliding to the right", "drifting right", "gliding rightward"),
            "eval": ("heading east", "travelling rightwards", "making its way to the right"),
        },
        "up": {
            "train": ("moving up", "sliding upward", "drifting up", "rising"),
            "eval": ("ascending", "climbing steadily", "heading north"),
            "parse": ("climbing", "floating up", "flying up", "goes up", "rises"),
        },
        "down": {
            "train": ("moving down", "sliding downward", "drifting down", "falling"),
            "eval": ("descending", "sinking steadily", "heading south"),
            "parse": ("sinking", "dropping", "falls", "goes down"),
        },
        "bounce": {
            "train": ("bouncing", "bouncing along", "hopping along"),
            "eval": ("springing up and down", "bounding along"),
            "parse": ("bounces", "bounce", "bouncy", "hopping", "hops", "jumping", "ricocheting"),
        },
        "still": {
            "train": ("staying still", "sitting still", "not moving", "resting in place"),
            "eval": ("remaining stationary", "motionless", "frozen in place"),
            "parse": ("still", "stationary", "static", "unmoving", "at rest", "standing still", "resting"),
        },
        "grow": {
            "train": ("growing", "getting bigger", "expanding"),
            "eval": ("swelling up", "inflating", "enlarging"),
            "parse": ("grows", "grow", "getting larger", "swelling", "expands", "scaling up"),
        },
        "shrink": {
            "train": ("shrinking", "getting smaller", "contracting"),
            "eval": ("deflating", "dwindling away"),
            "parse": ("shrinks", "shrink", "dwindling", "contracts", "scaling down"),
        },
    },
    # The drift of a bouncing object, said after the bounce phrase ("bouncing to the left").
    "direction": {
        "left": {
            "train": ("to the left", "leftward"),
            "eval": ("westward",),
            "parse": ("left", "leftwards", "west", "westwards"),
        },
        "right": {
            "train": ("to the right", "rightward"),
            "eval": ("eastward",),
            "parse": ("right", "rightwards", "east", "eastwards"),
        },
        "up": {"parse": ("up", "upward", "upwards", "north", "northward")},
        "down": {"parse": ("down", "downward", "downwards", "south", "southward")},
    },
    "background": {
        "plain dark": {
            "train": ("on a dark background", "against a black backdrop", "in the dark"),
            "eval": ("set against pitch darkness", "on a night-time canvas"),
            "parse": ("dark background", "black background", "darkness", "at night"),
        },
        "plain light": {
            "train": ("on a light background", "on a pale grey background"),
            "eval": ("against a bright, pale backdrop", "in a brightly lit empty room"),
            "parse": ("light background", "bright background", "grey background", "gray background"),
        },
        "gradient sky": {
            "train": ("under a sky", "against a gradient sky", "with a sky behind it"),
            "eval": ("beneath the open heavens", "in front of a hazy horizon"),
            "parse": ("sky", "heavens", "gradient", "horizon"),
        },
        "checker floor": {
            "train": ("on a checkered floor", "on a checkerboard"),
            "eval": ("above a chessboard pattern", "over a chequered ground"),
            "parse": ("checkered", "checker", "chequered", "checkerboard", "chessboard", "checked floor"),
        },
    },
}

# Rich-vocabulary training phrases: none uses a word that only held-out phrases use (checked by a test).
_RICH: dict[PhraseKind, dict[str, tuple[str, ...]]] = {
    "colour": {
        "red": ("ruby", "cherry red", "blood red", "vermilion", "tomato red", "carmine", "rose red", "fire-engine red"),
        "green": ("forest green", "jade", "grass green", "leaf green", "moss green", "olive green", "pea green"),
        "blue": (
            "sapphire",
            "royal blue",
            "ultramarine",
            "cornflower blue",
            "denim blue",
            "electric blue",
            "deep blue",
        ),
        "yellow": ("canary yellow", "butter yellow", "mustard", "sunflower yellow", "banana yellow", "daffodil"),
        "purple": ("lavender", "plum", "mauve", "grape", "amethyst", "orchid", "mulberry", "eggplant purple"),
        "orange": ("apricot", "pumpkin", "carrot orange", "burnt orange", "marigold", "peach", "copper", "mandarin"),
        "cyan": ("aquamarine", "seafoam", "ice blue", "robin egg blue", "pool blue", "glacier blue", "cerulean"),
        "white": ("pearl", "milky white", "cream", "chalk white", "bone white", "alabaster", "porcelain"),
    },
    "shape": {
        "circle": ("bubble", "globe", "marble", "coin", "puck", "bead", "round blob", "pellet"),
        "square": ("crate", "brick", "slab", "panel", "tablet", "parcel", "four-sided shape", "plaque"),
        "triangle": ("spike", "delta", "cone", "pennant", "tent shape", "fin", "wedge shape", "trigon"),
    },
    "size": {"small": ("wee", "petite", "compact", "diminutive"), "large": ("massive", "hefty", "oversized", "bulky")},
    "motion": {
        "left": ("shifting to the left", "cruising left", "sailing left", "creeping left", "coasting leftward"),
        "right": ("shifting to the right", "cruising right", "sailing right", "creeping right", "coasting rightward"),
        "up": ("soaring", "lifting upward", "moving upward", "shooting up", "levitating upward", "lifting off"),
        "down": ("plunging", "moving downward", "plummeting", "tumbling down", "lowering itself", "settling downward"),
        "bounce": ("skipping along", "bobbing along", "leaping along", "jumping along", "vaulting along"),
        "still": ("holding still", "not budging", "staying put", "keeping still", "idle", "at a standstill"),
        "grow": ("ballooning", "widening", "increasing in size", "puffing up", "becoming larger", "blowing up"),
        "shrink": ("reducing in size", "becoming smaller", "diminishing", "shriveling", "decreasing in size"),
    },
    "direction": {"left": ("toward the left", "off to the left"), "right": ("toward the right", "off to the right")},
    "background": {
        "plain dark": ("in a dark void", "on an inky background", "on a deep black field"),
        "plain light": ("on a light grey field", "on a pale surface", "on a whitish background"),
        "gradient sky": ("under a blue sky", "against the sky", "under a dusky sky"),
        "checker floor": ("on a checkered surface", "on a two-tone checkered floor", "on a checkerboard floor"),
    },
}

LEXICON: tuple[Entry, ...] = tuple(
    Entry(text, kind, value, split)
    for kind, values in _TABLE.items()
    for value, splits in values.items()
    for split, texts in splits.items()
    for text in texts
) + tuple(
    Entry(text, kind, value, "rich")
    for kind, values in _RICH.items()
    for value, texts in values.items()
    for text in texts
)


def phrases(kind: PhraseKind, value: str, split: Split) -> tuple[str, ...]:
    """The phrases of `split` naming `value` of `kind` (e.g. phrases("shape", "circle", "train"))."""
    if split == "rich":
        return _RICH[kind].get(value, ())
    return _TABLE[kind][value].get(split, ())
