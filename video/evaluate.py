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
    "CEILING_ATTRIBUTES",
    "EvalPrompt",
    "BY_VALUE",
    "adherence_details",
    "adherence_summary",
    "balanced_prompts",
    "eval_prompts",
    "flicker",
    "score_frames",
    "switch_prompts",
    "text_ceiling",
    "train_template_prompts",
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


def balanced_prompts(count: int, *, seed: int = 2025) -> list[EvalPrompt]:
    """`count` one-object held-out captions balanced over what they name: prompt k has colour k mod 8,
    motion (k + k // 8) mod 8 (each colour paired with different motions) and shape k mod 3, and each
    attribute's phrases (held-out synonyms and training words, as `eval_prompts` mixes them) are used in turn,
    so every value and phrase appears about equally often (exactly, when `count` is a multiple of their
    counts). Size, background, placement, template and mentions are drawn from `seed`."""
    from genmotion.data.toyworld import (
        COLOURS,
        MOTIONS,
        SHAPES,
        ClipSpec,
        caption,
        sample_background,
        sample_object_spec,
    )

    g = torch.Generator().manual_seed(seed)
    used: dict[tuple[str, str], int] = {}

    def in_turn(kind: str, value: str, options: tuple[str, ...]) -> str:
        n = used.get((kind, value), 0)
        used[(kind, value)] = n + 1
        return options[n % len(options)]

    out = []
    for k in range(count):
        colour, motion = COLOURS[k % len(COLOURS)], MOTIONS[(k + k // len(COLOURS)) % len(MOTIONS)]
        obj = sample_object_spec(g, colour=colour, motion=motion, shape=SHAPES[k % len(SHAPES)])
        spec = ClipSpec(objects=(obj,), background=sample_background(g))
        out.append(EvalPrompt(caption(spec, g, "eval", pick=in_turn), spec))
    return out


def train_template_prompts(prompts: Sequence[EvalPrompt], *, seed: int = 2024) -> list[EvalPrompt]:
    """The same specs captioned with the training templates and words: adherence on these against the
    held-out captions separates what the generator cannot draw from what the text does not convey."""
    from genmotion.data.toyworld import caption

    g = torch.Generator().manual_seed(seed)
    return [EvalPrompt(caption(p.spec, g, "train"), p.spec) for p in prompts]


CEILING_ATTRIBUTES = ("colour", "shape", "motion")


def text_ceiling(
    encoder: Any, prompts: Sequence[EvalPrompt], *, train_captions: int = 2000, steps: int = 300, seed: int = 7
) -> dict[str, float]:
    """How much of each attribute of single-object held-out `prompts` the pooled text embedding conveys, as
    learned from training captions: a linear probe on standardised embeddings (the models' own input
    rule, `text_statistics`) fitted on `train_captions` training-split captions, accuracy on the prompts.
    A generator that sees the prompt only through this embedding cannot do much better on held-out words."""
    from genmotion.data.toyworld import caption, sample_clip_spec
    from genmotion.video.text import text_statistics

    g = torch.Generator().manual_seed(seed)
    specs = [sample_clip_spec(g, num_objects=1) for _ in range(train_captions)]
    texts = [caption(spec, g, "train") for spec in specs]
    train_NE = encoder.encode(texts).pooled.float()
    mean, std = text_statistics(train_NE)
    x_train = (train_NE - mean) / std
    x_eval = (encoder.encode([p.text for p in prompts]).pooled.float() - mean) / std
    out = {}
    for attr in CEILING_ATTRIBUTES:
        names = sorted(
            {getattr(s.objects[0], attr) for s in specs} | {getattr(p.spec.objects[0], attr) for p in prompts}
        )
        y = torch.tensor([names.index(getattr(s.objects[0], attr)) for s in specs])
        y_eval = torch.tensor([names.index(getattr(p.spec.objects[0], attr)) for p in prompts])
        w = torch.zeros(x_train.shape[1], len(names), requires_grad=True)
        b = torch.zeros(len(names), requires_grad=True)
        opt = torch.optim.Adam([w, b], lr=0.01)
        with torch.enable_grad():
            for _ in range(steps):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(x_train @ w + b, y) + 1e-3 * w.square().sum()
                loss.backward()
                opt.step()
        with torch.no_grad():
            out[f"probe_{attr}"] = float(((x_eval @ w + b).argmax(1) == y_eval).float().mean())
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
    return adherence_details(pipe, prompts, seeds=seeds, num_frames=num_frames, **sampling)[0]


BY_VALUE = ("colour", "shape", "motion")


def adherence_details(
    pipe: Any,
    prompts: Sequence[EvalPrompt],
    *,
    seeds: Sequence[int] = (0,),
    num_frames: int = 16,
    **sampling: Any,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """`adherence_summary`, and each attribute's accuracy split by the value the prompt asked for (one-object
    prompts: {"motion": {"left": 0.75, ...}, ...}), which shows what a model cannot draw or read."""
    scores, flickers, wanted = [], [], []
    for item in prompts:
        for seed in seeds:
            frames = pipe.generate(item.text, num_frames=num_frames, seed=seed, **sampling).frames
            scores.append(score_frames(frames, item.text))
            flickers.append(flicker(frames))
            wanted.append(item.spec.objects[0] if len(item.spec.objects) == 1 else None)
    out = {f"adherence_{k}": v for k in ATTRIBUTES if (v := _mean(scores, k)) is not None}
    out["flicker"] = float(np.mean(flickers))
    by_value: dict[str, dict[str, float]] = {}
    for k in BY_VALUE:
        groups: dict[str, list[dict[str, bool]]] = {}
        for obj, score in zip(wanted, scores, strict=True):
            if obj is not None and k in score:
                groups.setdefault(getattr(obj, k), []).append(score)
        by_value[k] = {value: float(np.mean([x[k] for x in group])) for value, group in sorted(groups.items())}
    return out, by_value


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
