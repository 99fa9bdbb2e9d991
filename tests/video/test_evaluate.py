"""Text-side measures of the video bench: training-word captions of the held-out specs, the text ceiling."""

import dataclasses
from collections import Counter
from types import SimpleNamespace

from genmotion.data.toyworld import COLOURS, EVAL_TEMPLATES, MOTIONS, SHAPES, parse_prompt, render_clips
from genmotion.data.toyworld.vocab import phrases
from genmotion.text import PromptEncoder
from genmotion.video.evaluate import (
    adherence_details,
    balanced_prompts,
    eval_prompts,
    text_ceiling,
    train_template_prompts,
)


def test_train_template_prompts_keep_the_specs():
    held_out = eval_prompts(6, seed=5)
    train = train_template_prompts(held_out)
    assert [p.spec for p in train] == [p.spec for p in held_out]
    assert [p.text for p in train] != [p.text for p in held_out]


def test_text_ceiling_reads_training_words_and_is_deterministic():
    """The probe learns from training captions, so it reads training words back; held-out words are harder."""
    encoder = PromptEncoder()
    held_out = eval_prompts(24, seed=11)
    seen = text_ceiling(encoder, train_template_prompts(held_out), train_captions=300)
    assert seen["probe_colour"] >= 0.9 and seen["probe_shape"] >= 0.9
    unseen = text_ceiling(encoder, held_out, train_captions=300)
    assert unseen == text_ceiling(encoder, held_out, train_captions=300)
    assert unseen["probe_colour"] < seen["probe_colour"]


def test_balanced_prompts_name_every_value_and_phrase_equally_and_parse_back():
    prompts = balanced_prompts(96, seed=3)
    objects = [p.spec.objects[0] for p in prompts]
    assert set(Counter(o.colour for o in objects).values()) == {12} and len({o.colour for o in objects}) == len(COLOURS)
    assert set(Counter(o.motion for o in objects).values()) == {12} and len({o.motion for o in objects}) == len(MOTIONS)
    assert set(Counter(o.shape for o in objects).values()) == {32} and len({o.shape for o in objects}) == len(SHAPES)
    reds = [p.text.lower() for p, o in zip(prompts, objects, strict=True) if o.colour == "red"]
    words = phrases("colour", "red", "eval") + phrases("colour", "red", "train")  # crimson, scarlet, red
    assert [sum(f" {w} " in t for t in reds) for w in words] == [12 // len(words)] * len(words)
    for p, o in zip(prompts, objects, strict=True):
        query = parse_prompt(p.text).objects[0]
        assert (query.colour, query.shape, query.motion) == (o.colour, o.shape, o.motion), p.text
        assert any(t.prefix.strip() and p.text.lower().startswith(t.prefix.strip()) for t in EVAL_TEMPLATES), p.text
    assert [p.text for p in balanced_prompts(96, seed=3)] == [p.text for p in prompts]


def test_adherence_by_value_finds_the_motion_a_model_cannot_draw():
    """A fake pipeline renders each prompt's spec, but draws every growing object standing still."""
    prompts = balanced_prompts(16, seed=1)
    by_text = {p.text: p.spec for p in prompts}

    def generate(text, *, num_frames, seed, **sampling):
        spec = by_text[text]
        obj = spec.objects[0]
        if obj.motion == "grow":
            spec = dataclasses.replace(spec, objects=(dataclasses.replace(obj, motion="still"),))
        return SimpleNamespace(frames=render_clips([spec], num_frames, 32, 32).frames[0].numpy())

    summary, by_value = adherence_details(SimpleNamespace(generate=generate), prompts, num_frames=16)
    assert by_value["motion"]["grow"] == 0.0
    assert all(v == 1.0 for v in by_value["colour"].values())
    assert sum(by_value["motion"].values()) >= len(by_value["motion"]) - 2  # the detector reads the rest right
    assert 0.0 < summary["adherence_motion"] < 1.0
