"""Captions and the prompt parser: round trips on both splits, and held-out phrasings stay held out."""

from __future__ import annotations

import re

import pytest
import torch

from genmotion.data.toyworld import (
    EVAL_TEMPLATES,
    RICH_TEMPLATES,
    TRAIN_TEMPLATES,
    ClipSpec,
    ObjectQuery,
    caption,
    parse_prompt,
    sample_clip_specs,
    spec_from_prompt,
)
from genmotion.data.toyworld.vocab import LEXICON
from genmotion.errors import UsageError


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _captions(split: str, count: int = 300, seed: int = 0, vocabulary: str = "basic") -> list[tuple[ClipSpec, str]]:
    g = _g(seed)
    return [
        (spec, caption(spec, g, split=split, vocabulary=vocabulary))  # type: ignore[arg-type]
        for spec in sample_clip_specs(count, g)
    ]


@pytest.mark.parametrize(("split", "vocabulary"), [("train", "basic"), ("train", "rich"), ("eval", "basic")])
def test_caption_parse_round_trip(split, vocabulary):
    for spec, text in _captions(split, vocabulary=vocabulary):
        parsed = parse_prompt(text)
        assert len(parsed.objects) == len(spec.objects), text
        for query, obj in zip(parsed.objects, spec.objects, strict=True):
            assert (query.colour, query.shape, query.motion) == (obj.colour, obj.shape, obj.motion), text
            assert query.size in (None, obj.size), text
            assert query.heading in (None, obj.heading), text
        assert parsed.background in (None, spec.background), text


def test_captions_are_deterministic_per_generator():
    assert _captions("train", 20, seed=3) == _captions("train", 20, seed=3)
    assert _captions("eval", 20, seed=3) != _captions("train", 20, seed=3)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def _eval_only_words() -> set[str]:
    """Words of held-out phrases that no basic training phrase or template uses."""
    train_words = {w for e in LEXICON if e.split == "train" for w in _words(e.text)}
    eval_only = {w for e in LEXICON if e.split == "eval" for w in _words(e.text)} - train_words
    return eval_only - {w for t in TRAIN_TEMPLATES for w in _words(t.prefix + t.clause + t.joiner)}


@pytest.mark.parametrize("vocabulary", ["basic", "rich"])
def test_held_out_templates_and_phrases_never_appear_in_training_captions(vocabulary):
    train_text = " || ".join(text.lower() for _, text in _captions("train", 600, seed=1, vocabulary=vocabulary))
    for template in EVAL_TEMPLATES:  # each held-out template has a prefix and clause words of its own
        assert template.prefix.strip() and template.prefix.strip() not in train_text
        assert template not in TRAIN_TEMPLATES + RICH_TEMPLATES
    assert "can be seen" not in train_text and " while " not in train_text
    eval_only = _eval_only_words()
    assert eval_only and not (eval_only & _words(train_text)), sorted(eval_only & _words(train_text))


def test_rich_vocabulary_adds_wordings_but_no_held_out_word():
    rich = [e for e in LEXICON if e.split == "rich"]
    rich_words = {w for e in rich for w in _words(e.text)}
    rich_words |= {w for t in RICH_TEMPLATES for w in _words(t.prefix + t.clause + t.joiner)}
    assert not (rich_words & _eval_only_words()), sorted(rich_words & _eval_only_words())
    texts = [e.text for e in LEXICON]
    assert len(texts) == len(set(texts))  # one meaning per phrase, so the parser is unambiguous
    seen = _words(" ".join(text for _, text in _captions("train", 300, seed=2, vocabulary="rich")))
    assert {w for e in rich for w in _words(e.text)} & seen - _words(
        " ".join(e.text for e in LEXICON if e.split == "train")
    )
    # the eval split and the basic training split do not change with the vocabulary
    assert _captions("eval", 20, seed=3, vocabulary="rich") == _captions("eval", 20, seed=3)
    with pytest.raises(UsageError):
        caption(_captions("train", 1)[0][0], _g(0), vocabulary="huge")  # type: ignore[arg-type]


def test_eval_captions_use_held_out_templates():
    prefixes = tuple(t.prefix for t in EVAL_TEMPLATES)
    assert all(text.lower().startswith(prefixes) for _, text in _captions("eval", 50))


Q = ObjectQuery
USER_PROMPTS = [
    ("a red ball bouncing to the left", [Q(colour="red", shape="circle", motion="bounce", heading="left")], None),
    ("A LARGE Yellow Box rising!", [Q(colour="yellow", shape="square", size="large", motion="up")], None),
    ("blue square moving up", [Q(colour="blue", shape="square", motion="up")], None),
    ("a dark red ball on a light background", [Q(colour="red", shape="circle")], "plain light"),
    (
        "crimson orb heading west beneath the open heavens",
        [Q(colour="red", shape="circle", motion="left")],
        "gradient sky",
    ),
    (
        "a tiny turquoise pyramid frozen in place",
        [Q(colour="cyan", shape="triangle", size="small", motion="still")],
        None,
    ),
    (
        "a red ball moving left and a blue box swelling up on a checkerboard",
        [Q(colour="red", shape="circle", motion="left"), Q(colour="blue", shape="square", motion="grow")],
        "checker floor",
    ),
    (
        "a ball moving right and a green wedge",
        [Q(shape="circle", motion="right"), Q(colour="green", shape="triangle")],
        None,
    ),
]


@pytest.mark.parametrize(("prompt", "expected", "background"), USER_PROMPTS)
def test_parses_what_users_type(prompt, expected, background):
    parsed = parse_prompt(prompt)
    assert list(parsed.objects) == expected and parsed.background == background


def test_spec_from_prompt_keeps_what_is_said_and_draws_the_rest():
    spec = spec_from_prompt("a small green triangle shrinking on a checkered floor", _g(0))
    obj = spec.objects[0]
    assert (obj.colour, obj.shape, obj.size, obj.motion, spec.background) == (
        "green",
        "triangle",
        "small",
        "shrink",
        "checker floor",
    )
    assert spec_from_prompt("a purple disc", _g(4)) == spec_from_prompt("a purple disc", _g(4))
    two = spec_from_prompt("a ball and a box", _g(1))
    assert [o.shape for o in two.objects] == ["circle", "square"] and two.objects[0].colour != two.objects[1].colour


@pytest.mark.parametrize("prompt", ["hello world", "", "a red ball and a red box", "a ball, a box and a wedge"])
def test_unusable_prompts_are_usage_errors(prompt):
    with pytest.raises(UsageError):
        spec_from_prompt(prompt, _g(0))
