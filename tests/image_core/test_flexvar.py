"""FlexVAR on a tiny model: golden slice, save/load round trip, cached sampling == the block-causal forward over its
own tokens, the position map at any size, schedules, training task, and `genmotion image` with FlexVAR flags."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from genmotion.cli.app import main
from genmotion.errors import UsageError
from genmotion.image_core.config import VARSamplingConfig
from genmotion.image_core.flex_checkpoint import FlexVARImageModel, load_flexvar_model, save_flexvar_model
from genmotion.image_core.flex_config import FlexVARConfig, FlexVARImageConfig
from genmotion.image_core.flex_pipeline import FlexVARPipeline
from genmotion.image_core.flex_sampler import (
    flex_guidance_scales,
    parse_schedule,
    resolve_schedule,
    schedule_for_steps,
    stream_flex_scales,
)
from genmotion.image_core.flex_train import flex_inputs, random_schedule
from genmotion.nn.vqvae_config import VQVAEConfig
from genmotion.sampling.guidance import guide

TINY_VAE = VQVAEConfig(
    vocab_size=32,
    latent_channels=4,
    channels=8,
    channel_mult=(1, 2),
    num_res_blocks=1,
    norm_groups=4,
    quant_resi=0.0,
    using_znorm=True,
    patch_nums=(4,),
)
TINY_FLEX = FlexVARConfig(
    depth=2,
    head_dim=8,
    num_classes=5,
    vocab_size=32,
    latent_channels=4,
    train_sizes=(1, 2, 3, 4),
    default_sizes=(1, 2, 4),
    position_size=4,
    max_tokens=30,
)
TINY = FlexVARImageConfig(vae=TINY_VAE, flexvar=TINY_FLEX)
NAMES = ("red circle", "red square", "blue circle", "blue square", "green circle")


def _model(seed: int = 0) -> FlexVARImageModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FlexVARImageModel(TINY)
    model.var.init_weights(generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():  # larger gates and head than the init's, so every part shows in the logits
        model.var.head.weight.mul_(50)
        for block in model.var.typed_blocks():
            block.ada_lin[-1].bias.normal_(0, 0.5, generator=torch.Generator().manual_seed(seed + 1))
    return model.eval()


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ckpt") / "tiny-flexvar"
    sampling = VARSamplingConfig(guidance_scale=2.0, top_k=0, top_p=0.0)
    save_flexvar_model(_model(), directory, class_names=NAMES, sampling=sampling, dtype=None)
    return directory


def _images(batch: int, side: int = 8) -> torch.Tensor:
    return torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(3)) * 2 - 1


def test_golden_slice_of_the_teacher_forced_logits():
    model, sizes = _model(), (1, 2, 4)
    indices = model.vae.scale_indices(_images(2), sizes)
    logits = model.var(torch.tensor([0, 3]), flex_inputs(model.vae.quantize, indices, sizes))
    assert logits.shape == (2, 21, 32)
    got = torch.cat((logits[0, 0, :4], logits[1, -1, -4:]))
    assert torch.allclose(got, torch.tensor(GOLDEN), atol=2e-5), got.tolist()


GOLDEN = [-0.36955, -1.11289, -0.35898, 0.00391, -0.52926, 0.17077, -0.15748, -0.28219]


@pytest.mark.parametrize(("sizes", "guidance"), [((1, 2, 4), 1.0), ((1, 3, 4), 3.0), ((1, 2, 3, 4, 6), 2.0)])
def test_cached_sampling_equals_the_masked_forward_over_its_own_tokens(sizes, guidance):
    """Greedy cached sampling, then the block-causal forward teacher-forced on the sampled tokens: the same
    guided argmax at every scale (also at a side of 6, larger than training drew)."""
    model, labels = _model(), torch.tensor([0, 2, 4])
    steps = list(
        stream_flex_scales(
            model.var,
            model.vae.quantize,
            labels,
            sizes,
            generator=torch.Generator(),
            guidance_scale=guidance,
            temperature=0.0,
        )
    )
    tokens = [s.indices for s in steps]
    assert [t.shape[1] for t in tokens] == [s * s for s in sizes]
    inputs = flex_inputs(model.vae.quantize, tokens, sizes)
    cond = model.var(labels, inputs)
    uncond = model.var(torch.full_like(labels, TINY_FLEX.num_classes), inputs)
    scales, begin = flex_guidance_scales(guidance, sizes, TINY_FLEX.latent_size), 0
    for k, side in enumerate(sizes):
        end = begin + side * side
        guided = guide(cond[:, begin:end], uncond[:, begin:end], scales[k])
        assert torch.equal(guided.argmax(-1), tokens[k]), f"scale {k} ({side}x{side})"
        begin = end


def test_position_map_is_area_resized_to_every_scale():
    var = _model().var
    P, C = TINY_FLEX.position_size, TINY_FLEX.width
    for h, w in ((1, 1), (2, 3), (4, 4), (7, 5), (12, 12)):
        assert var.positions(h, w).shape == (1, h * w, C)
    assert torch.allclose(var.positions(1, 1)[0, 0], var.pos_map.mean((0, 2, 3)))
    assert torch.equal(var.positions(P, P), var.pos_map.flatten(2).transpose(1, 2))
    assert not hasattr(var, "lvl_embed")


def test_save_load_round_trip_and_same_seed_same_images(tiny_ckpt):
    loaded = load_flexvar_model(tiny_ckpt)
    for key, value in _model().state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    pipe = FlexVARPipeline.from_pretrained(tiny_ckpt)
    a = pipe.generate("blue square", num_images=2, seed=5, num_steps=3)
    b = pipe.generate("blue square", num_images=2, seed=5, num_steps=3)
    chunks = list(pipe.stream("blue square", num_images=2, seed=5, num_steps=3))
    assert (a.images == b.images).all() and (a.images == chunks[-1].images).all()
    assert a.images.shape == (2, 8, 8, 3) and a.class_names == ("blue square",) * 2
    big = pipe.generate(0, image_size=12, schedule=(1, 2, 4, 6))
    assert big.images.shape == (1, 12, 12, 3) and [t.shape[1] for t in big.tokens] == [1, 4, 16, 36]
    reloaded = tiny_ckpt.parent / "again"
    pipe.save_pretrained(reloaded)
    assert FlexVARPipeline.from_pretrained(reloaded).sampling == pipe.sampling


def test_schedules_from_steps_and_their_errors():
    assert parse_schedule("1,2,4") == (1, 2, 4)
    assert schedule_for_steps(3, 8) == (1, 3, 8) and schedule_for_steps(8, 12) == (1, 2, 3, 4, 5, 6, 8, 12)
    assert resolve_schedule(TINY_FLEX, 4) == (1, 2, 4) and resolve_schedule(TINY_FLEX, 6) == (1, 2, 4, 6)
    assert resolve_schedule(TINY_FLEX, 4, num_steps=4) == (1, 2, 3, 4)
    for bad in (
        {"schedule": (2, 4)},
        {"schedule": (1, 3, 2, 4)},
        {"schedule": (1, 2)},
        {"num_steps": 5},
        {"num_steps": 1},
        {"num_steps": 2, "schedule": (1, 4)},
    ):
        with pytest.raises(UsageError):
            resolve_schedule(TINY_FLEX, 4, **bad)
    with pytest.raises(UsageError):
        resolve_schedule(TINY_FLEX, 17)  # over 4x the trained side
    with pytest.raises(UsageError):
        parse_schedule("1,two,4")
    assert flex_guidance_scales(3.0, (1, 2, 4), 4) == [1.0, 2.0, 3.0]
    assert flex_guidance_scales(3.0, (1, 2, 6), 4) == [1.0, 2.0, 3.0]
    assert flex_guidance_scales(3.0, tuple(range(1, 13)), 16)[9:] == [3.0, 3.0, 3.0]  # full after 9 steps


def test_random_training_schedules_start_at_1_end_at_the_latent_and_fit_the_budget():
    g = torch.Generator().manual_seed(0)
    seen = {random_schedule(TINY_FLEX, g, default_rate=0.1, keep_rate=0.5) for _ in range(200)}
    assert seen == {(1, 4), (1, 2, 4), (1, 3, 4), (1, 2, 3, 4)}  # every subset of the sides between 1 and 4
    capped = FlexVARConfig(**{**vars(TINY_FLEX), "max_tokens": 21})  # room for 1 + 4 + 16, not for a 3x3 more
    assert {random_schedule(capped, g, default_rate=0.0, keep_rate=1.0) for _ in range(5)} == {(1, 2, 4)}


def test_image_cli_runs_flexvar_steps_schedule_and_size(tiny_ckpt, tmp_path):
    base = ["image", "--ckpt", str(tiny_ckpt), "--class", "blue circle"]
    assert main([*base, "--steps", "3", "-o", str(tmp_path / "a.png")]) == 0
    assert Image.open(tmp_path / "a.png").size == (8, 8)
    assert main([*base, "--num", "2", "--size", "12", "--schedule", "1,2,4,6", "-o", str(tmp_path / "b.png")]) == 0
    assert Image.open(tmp_path / "b.png").size == (24, 12)  # two 12x12 images side by side


@pytest.mark.parametrize(
    "flags",
    [
        ["--schedule", "1,x,4"],  # not integers
        ["--schedule", "2,4"],  # does not start at 1
        ["--schedule", "1,3,2,4"],  # not increasing
        ["--schedule", "1,2"],  # does not end at the latent side
        ["--size", "12", "--schedule", "1,2,4"],  # ends at 4 but 12 px needs 6
        ["--steps", "9"],  # more steps than latent sides
        ["--steps", "0"],
        ["--size", "7"],  # not a multiple of the downsampling
        ["--size", "80"],  # over 4x the trained side
        ["--steps", "3", "--schedule", "1,2,4"],
        ["--kv", "scalekv"],  # a VAR-only flag
    ],
)
def test_image_cli_refuses_schedules_the_model_cannot_take(tiny_ckpt, tmp_path, flags):
    assert main(["image", "--ckpt", str(tiny_ckpt), "--class", "0", *flags, "-o", str(tmp_path / "x.png")]) == 2
    assert not (tmp_path / "x.png").exists()


def test_flexvar_flags_need_a_flexvar_model(tmp_path):
    assert main(["image", "--model", "var", "--class", "0", "--steps", "3", "-o", str(tmp_path / "x.png")]) == 2


def test_both_flexvar_tasks_train_and_export_a_loadable_checkpoint(tmp_path):
    import dataclasses

    import numpy as np
    import yaml

    from genmotion.config import to_dict
    from genmotion.train.run import train

    for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), colour, dtype=np.uint8)).save(tmp_path / "images" / name / f"{i}.png")
    data = {"source": "folder", "root": str(tmp_path / "images"), "image_size": 8, "eval_images": 4}
    trainer = {"max_steps": 2, "batch_size": 4, "accelerator": "cpu", "threads": 1, "progress": False, "log_every": 1}
    tok = tmp_path / "tok.yaml"
    tok.write_text(
        yaml.safe_dump(
            {
                "task": "flexvar-tokenizer",
                "model": {"vae": to_dict(TINY_VAE), "codebook": "ema"},
                "data": data,
                "trainer": {**trainer, "out_dir": str(tmp_path / "tok")},
            }
        )
    )
    tokenizer = train(tok, command="test").checkpoint
    flex = to_dict(dataclasses.replace(TINY_FLEX, num_classes=2))
    var = tmp_path / "var.yaml"
    var.write_text(
        yaml.safe_dump(
            {
                "task": "flexvar",
                "model": {"flexvar": flex, "tokenizer": str(tokenizer)},
                "data": data,
                "trainer": {**trainer, "out_dir": str(tmp_path / "var")},
            }
        )
    )
    result = train(var, command="test")
    assert result.steps == 2 and "eval_token_accuracy" in result.metrics
    pipe = FlexVARPipeline.from_pretrained(result.checkpoint)
    assert pipe.class_names == ("blue", "red") and pipe.generate("red", num_steps=2).images.shape == (1, 8, 8, 3)
