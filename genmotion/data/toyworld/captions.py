"""Captions of toy clips from templates and synonyms, with a held-out set for evaluation, and the parser
that reads captions and prompts back into (partial) specs.

`caption(spec, generator, split="train")` writes only training templates and phrases (with
`vocabulary="rich"`, also the rich templates and phrases: more wordings, none held out);
`split="eval"` writes only held-out templates (their prefixes and clause verbs never occur in training
captions) with held-out synonyms where the lexicon has them, so a text-conditioned model can be
scored on phrasings it never saw. Every choice is drawn from the given generator.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

import torch

from genmotion.data.toyworld.spec import (
    MAX_OBJECTS,
    ClipSpec,
    ObjectSpec,
    place_apart,
    sample_background,
    sample_object_spec,
)
from genmotion.data.toyworld.vocab import LEXICON, Background, Colour, Entry, Heading, Motion, Shape, Size, phrases
from genmotion.errors import UsageError

__all__ = [
    "EVAL_TEMPLATES",
    "RICH_TEMPLATES",
    "TRAIN_TEMPLATES",
    "CaptionSplit",
    "CAPTION_VOCABULARIES",
    "CaptionVocabulary",
    "Pick",
    "ObjectQuery",
    "PromptSpec",
    "Template",
    "caption",
    "parse_prompt",
    "spec_from_prompt",
]

CaptionSplit = Literal["train", "eval"]
CaptionVocabulary = Literal["basic", "rich"]
CAPTION_VOCABULARIES: tuple[CaptionVocabulary, ...] = get_args(CaptionVocabulary)
_T = TypeVar("_T")


@dataclass(frozen=True)
class Template:
    """prefix + clause per object (joined by `joiner`) + optional background phrase.

    clause holds {np} (the noun phrase: article, optional size, colour, shape) and {motion}.
    """

    prefix: str
    clause: str
    joiner: str


TRAIN_TEMPLATES: tuple[Template, ...] = (
    Template("", "{np} {motion}", " and "),
    Template("there is ", "{np} {motion}", " and "),
    Template("video of ", "{np} {motion}", " and "),
    Template("a clip showing ", "{np} {motion}", " and "),
    Template("", "{np} that is {motion}", " and "),
)
# More training wordings for `vocabulary="rich"`: none uses a word that only held-out phrases use.
RICH_TEMPLATES: tuple[Template, ...] = (
    Template("an animation of ", "{np} {motion}", " and "),
    Template("a view of ", "{np} {motion}", " and "),
    Template("", "{np}, {motion}", ", and "),
    Template("the camera shows ", "{np} {motion}", " and "),
    Template("a short clip of ", "{np} {motion}", " and "),
    Template("", "{np} which is {motion}", "; "),
    Template("watch ", "{np} {motion}", " and "),
)
# Held out: training captions never contain these prefixes, "can be seen" or " while ".
EVAL_TEMPLATES: tuple[Template, ...] = (
    Template("in this scene, ", "{np} can be seen {motion}", " while "),
    Template("footage where ", "{np} is {motion}", " while "),
    Template("we observe how ", "{np} is {motion}", " while "),
)
_MENTION_SIZE = 0.5  # probability that a caption names the size
_MENTION_BACKGROUND = 0.5
_MENTION_HEADING = 0.7  # of a bouncing object's drift direction


Kind = Literal["colour", "shape", "size", "motion", "direction", "background"]
Pick = Callable[[Kind, str, tuple[str, ...]], str]
"""Chooses a phrase for (kind, value) among its options (the split's words); the default draws at random."""


def _draw(generator: torch.Generator, options: Sequence[_T]) -> _T:
    return options[int(torch.randint(len(options), (), generator=generator))]


def _coin(generator: torch.Generator, probability: float) -> bool:
    return float(torch.rand((), generator=generator)) < probability


def _words(kind: Kind, value: str, split: str, rich: bool = False) -> tuple[str, ...]:
    """Training phrases for train (plus the rich ones if `rich`); for eval, held-out phrases where any
    exist plus the basic training ones (so eval captions mix familiar and new words, as real paraphrases do)."""
    train = phrases(kind, value, "train")
    if split == "train":
        return train + phrases(kind, value, "rich") if rich else train
    return phrases(kind, value, "eval") + train


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _object_clause(
    obj: ObjectSpec,
    template: Template,
    words: Callable[[Kind, str], tuple[str, ...]],
    generator: torch.Generator,
    pick: Pick,
) -> str:
    colour = pick("colour", obj.colour, words("colour", obj.colour))
    shape = pick("shape", obj.shape, words("shape", obj.shape))
    size = pick("size", obj.size, words("size", obj.size))
    motion = pick("motion", obj.motion, words("motion", obj.motion))
    heading = pick("direction", obj.heading, words("direction", obj.heading))
    # fixed-size objects only: a growing "small" ball is not small for long
    say_size = _coin(generator, _MENTION_SIZE) and obj.motion not in ("grow", "shrink")
    say_heading = _coin(generator, _MENTION_HEADING) and obj.motion == "bounce"
    adjectives = f"{size} {colour}" if say_size else colour
    noun_phrase = f"{_article(adjectives)} {adjectives} {shape}"
    if say_heading:
        motion = f"{motion} {heading}"
    return template.clause.format(np=noun_phrase, motion=motion)


def caption(
    spec: ClipSpec,
    generator: torch.Generator,
    split: CaptionSplit = "train",
    *,
    pick: Pick | None = None,
    vocabulary: CaptionVocabulary = "basic",
) -> str:
    """A caption naming every object's colour, shape and motion (size, background and a bounce's drift
    direction sometimes), e.g. "There is a small red ball moving left on a checkered floor.". `pick` chooses
    the phrases (e.g. in turn, for a balanced evaluation set); template and mentions stay random.
    `vocabulary="rich"` widens the training split's templates and phrases (held-out ones stay out); the
    eval split is the same with either."""
    if split not in ("train", "eval"):
        raise UsageError(f"unknown caption split {split!r}", fix="use split='train' or split='eval'")
    if vocabulary not in CAPTION_VOCABULARIES:
        raise UsageError(
            f"unknown caption vocabulary {vocabulary!r}", fix=f"use one of: {', '.join(CAPTION_VOCABULARIES)}"
        )
    rich = vocabulary == "rich" and split == "train"
    choose: Pick = pick or (lambda kind, value, options: _draw(generator, options))
    templates = EVAL_TEMPLATES if split == "eval" else TRAIN_TEMPLATES + (RICH_TEMPLATES if rich else ())
    template = _draw(generator, templates)

    def words(kind: Kind, value: str) -> tuple[str, ...]:
        return _words(kind, value, split, rich)

    clauses = [_object_clause(obj, template, words, generator, choose) for obj in spec.objects]
    background = choose("background", spec.background, words("background", spec.background))
    text = template.prefix + template.joiner.join(clauses)
    if _coin(generator, _MENTION_BACKGROUND):
        text = f"{text} {background}"
    if _coin(generator, 0.5):
        text = text[0].upper() + text[1:]
    if _coin(generator, 0.5):
        text += "."
    return text


# -- reading prompts ---------------------------------------------------------------------------------
# Prompt text -> partial clip spec: which colour, shape, size and motion each named object has, and the
# background if said. The parser knows every phrase of the lexicon (train, held-out and extra spellings),
# so it reads training captions, held-out captions and what users type. Phrases are matched longest
# first on lowercase word tokens; an object ends where a new noun phrase begins ("a red ball moving left
# and a blue box rising" names two objects).


@dataclass(frozen=True)
class ObjectQuery:
    """What a prompt says about one object; None where it says nothing. heading: the drift of a bounce."""

    colour: Colour | None = None
    shape: Shape | None = None
    size: Size | None = None
    motion: Motion | None = None
    heading: Heading | None = None


@dataclass(frozen=True)
class PromptSpec:
    """A parsed prompt: the objects it names (in order) and the background, if said."""

    objects: tuple[ObjectQuery, ...] = ()
    background: Background | None = None

    @property
    def is_empty(self) -> bool:
        return not self.objects and self.background is None


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def _phrase_index() -> dict[str, list[tuple[tuple[str, ...], Entry]]]:
    """First token -> (token tuple, entry), longest phrase first."""
    index: dict[str, list[tuple[tuple[str, ...], Entry]]] = {}
    for entry in LEXICON:
        words = tuple(_tokens(entry.text))
        index.setdefault(words[0], []).append((words, entry))
    for options in index.values():
        options.sort(key=lambda item: -len(item[0]))
    return index


_INDEX = _phrase_index()


def _mentions(text: str) -> list[Entry]:
    """Lexicon entries found in `text`, left to right, longest match at each position."""
    tokens, found, i = _tokens(text), [], 0
    while i < len(tokens):
        for words, entry in _INDEX.get(tokens[i], ()):
            if tuple(tokens[i : i + len(words)]) == words:
                found.append(entry)
                i += len(words)
                break
        else:
            i += 1
    return found


def _starts_new_object(current: dict[str, str], kind: str) -> bool:
    if not current:
        return False
    if kind == "shape":
        return "shape" in current
    # a colour or size after a finished clause ("... ball moving left and [a blue] box") starts the next
    return kind in current or ("shape" in current and "motion" in current)


def parse_prompt(text: str) -> PromptSpec:
    """Parse a prompt. Never raises: a prompt naming nothing gives an empty PromptSpec (see is_empty)."""
    objects: list[dict[str, Any]] = []  # ObjectQuery fields; the lexicon holds only valid names
    background: Any = None
    for entry in _mentions(text):
        if entry.kind == "background":
            background = background or entry.value
            continue
        if entry.kind in ("colour", "shape", "size") and (not objects or _starts_new_object(objects[-1], entry.kind)):
            objects.append({})
        elif not objects:
            objects.append({})
        current = objects[-1]
        if entry.kind in ("colour", "shape", "size"):
            current[entry.kind] = entry.value
        elif entry.kind == "motion":
            current.setdefault("motion", entry.value)
        elif current.get("motion") == "bounce":  # a direction after a bounce is its drift
            if entry.value in ("left", "right"):
                current.setdefault("heading", entry.value)
        else:
            current.setdefault("motion", entry.value)
    return PromptSpec(objects=tuple(ObjectQuery(**fields) for fields in objects), background=background)


def spec_from_prompt(prompt: str | PromptSpec, generator: torch.Generator) -> ClipSpec:
    """A clip matching the prompt; what it does not say is drawn from `generator`.

    Raises UsageError when the prompt names nothing the toy world knows, more than two objects, or
    two objects of one colour.
    """
    query = parse_prompt(prompt) if isinstance(prompt, str) else prompt
    if query.is_empty:
        raise UsageError(
            f"the prompt {prompt!r} names nothing the toy world knows",
            why="it needs a colour, shape, size, motion or background word",
            fix="try e.g. 'a red ball bouncing to the left' or 'a small blue square moving up on a checkered floor'",
        )
    if len(query.objects) > MAX_OBJECTS:
        raise UsageError(
            f"the prompt names {len(query.objects)} objects; the toy world draws at most {MAX_OBJECTS}",
            fix="describe one or two objects",
        )
    named = [q.colour for q in query.objects if q.colour]
    repeated = [c for c in named if named.count(c) > 1]
    if repeated:
        raise UsageError(
            f"the prompt gives two objects the colour {repeated[0]!r}",
            why="objects of one clip must differ in colour so they can be told apart",
            fix="give each object its own colour",
        )
    background = sample_background(generator)
    objects: list[ObjectSpec] = []
    for q in query.objects or (ObjectQuery(),):
        taken = [o.colour for o in objects] + [c for c in named if c != q.colour]
        obj = sample_object_spec(
            generator,
            shape=q.shape,
            colour=q.colour,
            size=q.size,
            motion=q.motion,
            heading=q.heading,
            exclude_colours=taken,
        )
        objects.append(place_apart(obj, objects, generator) or obj)  # overlap only if the prompt forces it
    return ClipSpec(objects=tuple(objects), background=query.background or background)
