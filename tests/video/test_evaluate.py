"""Text-side measures of the video bench: training-word captions of the held-out specs, the text ceiling."""

from genmotion.text import PromptEncoder
from genmotion.video.evaluate import eval_prompts, text_ceiling, train_template_prompts


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
