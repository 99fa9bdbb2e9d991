"""Toy-world quality measures of a VideoAR pipeline: prompt adherence on held-out paraphrases (the
detector reads colour/shape/motion back from the frames), temporal flicker, drift over long runs and
prompt-switch adherence. Shared by the training task (model card) and `genmotion bench video`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "ATTRIBUTES",
    "EvalPrompt",
    "adherence_summary",
    "eval_prompts",
    "flicker",
    "score_frames",
    "switch_prompts",
]

ATTRIBUTES = ("colour", "shape", "motion", "size", "background", "all")


@dataclass(frozen=True)
class EvalPrompt:
    """A held-out caption and the spec it was written from."""

    text: str
    spec: Any


def eval_prompts(count: int, *, seed: int = 2024, num_objects: int = 1) -> list[EvalPrompt]:
    """`count` captions written with the held-out templates and synonyms (never seen in training)."""
    from genmotion.data.toyworld import caption, sample_clip_spec

    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        spec = sample_clip_spec(g, num_objects=num_objects)
        out.append(EvalPrompt(caption(spec, g, "eval"), spec))
    return out


def flicker(frames: np.ndarray) -> float:
    """(255 - mean |frame_t - frame_t+1|) / 255 over a clip (1 = perfectly still)."""
    if frames.shape[0] < 2:
        return 1.0
    diff = np.abs(frames[1:].astype(np.float32) - frames[:-1].astype(np.float32)).mean()
    return float((255.0 - diff) / 255.0)


def score_frames(frames: np.ndarray, prompt: str) -> dict[str, bool]:
    """The detector's verdict per attribute the prompt names (see toyworld `score_adherence`)."""
    from genmotion.data.toyworld import score_adherence

    return score_adherence(frames, prompt)


def _mean(scores: Iterable[dict[str, bool]], key: str) -> float | None:
    values = [float(s[key]) for s in scores if key in s]
    return sum(values) / len(values) if values else None


def adherence_summary(
    pipe: Any,
    prompts: Sequence[EvalPrompt],
    *,
    seeds: Sequence[int] = (0,),
    num_frames: int = 16,
    **sampling: Any,
) -> dict[str, float]:
    """Mean detector accuracy per attribute (and flicker) over prompts x seeds, `num_frames` each."""
    scores, flickers = [], []
    for item in prompts:
        for seed in seeds:
            frames = pipe.generate(item.text, num_frames=num_frames, seed=seed, **sampling).frames
            scores.append(score_frames(frames, item.text))
            flickers.append(flicker(frames))
    out = {f"adherence_{k}": v for k in ATTRIBUTES if (v := _mean(scores, k)) is not None}
    out["flicker"] = float(np.mean(flickers))
    return out


MOTION_PHRASES = {
    "left": "moving left",
    "right": "moving right",
    "up": "moving up",
    "down": "moving down",
    "still": "standing still",
    "grow": "growing",
    "shrink": "shrinking",
}
_SWITCH = {
    "left": "right",
    "right": "left",
    "up": "down",
    "down": "up",
    "still": "left",
    "grow": "shrink",
    "shrink": "grow",
}


def switch_prompts(count: int, *, seed: int = 77) -> list[tuple[str, str, dict[str, str]]]:
    """(first prompt, second prompt, {"colour", "shape", "motion"} wanted after the switch) for one object
    whose motion changes mid-stream, e.g. "a red ball moving left" -> "the red ball turns and moves right"."""
    from genmotion.data.toyworld import COLOURS, SHAPES

    g = torch.Generator().manual_seed(seed)
    names = {"circle": "ball", "square": "box", "triangle": "triangle"}
    motions = list(_SWITCH)
    out = []
    for _ in range(count):
        colour = COLOURS[int(torch.randint(len(COLOURS), (), generator=g))]
        shape = SHAPES[int(torch.randint(len(SHAPES), (), generator=g))]
        first = motions[int(torch.randint(len(motions), (), generator=g))]
        second = _SWITCH[first]
        before = f"a {colour} {names[shape]} {MOTION_PHRASES[first]}"
        after = f"the {colour} {names[shape]} turns and starts {MOTION_PHRASES[second]}"
        out.append((before, after, {"colour": colour, "shape": shape, "motion": second}))
    return out
