"""`genmotion image`, `genmotion convert var` and the VAR pipeline on a tiny checkpoint: files written,
bad input exits 2 (usage) or 3 (files), stream() == generate()."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from image_core_official_layout import random_state_dict, var_inventory
from image_core_tiny import PATCH_NUMS, TINY, seeded
from PIL import Image

from genmotion.cli.app import main
from genmotion.image_core.convert import save_image_model
from genmotion.image_core.model import VARImageModel
from genmotion.image_core.pipeline import VARPipeline

NAMES = ("red circle", "red square", "blue circle", "blue square", "green circle")


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ckpt") / "tiny-var"
    save_image_model(seeded(VARImageModel, TINY), directory, class_names=NAMES)
    return directory


def test_image_writes_a_png_grid(tiny_ckpt, tmp_path):
    out = tmp_path / "sub" / "grid.png"
    code = main(
        ["image", "--ckpt", str(tiny_ckpt), "--class", "blue square", "--num", "3", "--seed", "1", "-o", str(out)]
    )
    assert code == 0 and out.is_file()
    assert Image.open(out).size == (16, 16)  # 3 images of 8x8 in a 2x2 grid
    assert not list(out.parent.glob(".*tmp"))  # written atomically: no leftovers


def test_image_inpainting_and_kv_policies_from_the_cli(tiny_ckpt, tmp_path):
    Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8)).save(tmp_path / "in.png")
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[:, 4:] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    args = ["image", "--ckpt", str(tiny_ckpt), "--class", "2", "--inpaint", str(tmp_path / "in.png")]
    assert main([*args, "--mask", str(tmp_path / "mask.png"), "-o", str(tmp_path / "edit.png")]) == 0
    assert main(["image", "--ckpt", str(tiny_ckpt), "-c", "0", "--kv", "scalekv", "-o", str(tmp_path / "s.png")]) == 0


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--class", "purple cube"], 2),  # unknown class name
        (["--class", "9"], 2),  # id out of range
        (["--class", "0", "--kv", "lru"], 2),
        (["--class", "0", "--num", "0"], 2),
        (["--class", "0", "-o", "out.gif"], 2),  # not an image format
        (["--class", "0", "--inpaint", "missing.png", "--mask", "missing.png"], 3),
        (["--class", "0", "--inpaint", "x.png"], 2),  # --mask missing
        (["--class", "0", "--var", "missing.pth"], 2),  # --ckpt and --var together
        (["--class", "0", "--kv", "hack"], 2),  # no head profile shipped with this checkpoint
        (["--class", "0", "--guidance", "-1"], 2),
    ],
)
def test_bad_image_arguments_exit_2_or_3(tiny_ckpt, tmp_path, args, code):
    out = [] if "-o" in args else ["-o", str(tmp_path / "x.png")]
    assert main(["image", "--ckpt", str(tiny_ckpt), *args, *out]) == code


def test_hack_without_a_profile_says_to_pass_one(tiny_ckpt, tmp_path, capsys):
    assert main(["image", "--ckpt", str(tiny_ckpt), "--class", "0", "--kv", "hack", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "--kv hack needs a head profile" in err and "--head-profile" in err


def test_missing_checkpoint_and_hack_without_profile(tmp_path):
    assert main(["image", "--ckpt", str(tmp_path / "nowhere"), "--class", "0", "-o", str(tmp_path / "x.png")]) == 2
    assert main(["image", "--var", str(tmp_path / "var.pth"), "--class", "0", "-o", str(tmp_path / "x.png")]) == 3


def test_convert_var_from_official_files(tmp_path):
    inventory = var_inventory(depth=2, patch_nums=PATCH_NUMS, width=16, num_classes=5, vocab=32, cvae=4)
    var_sd = random_state_dict(inventory, seed=0, patch_nums=PATCH_NUMS)
    torch.save(var_sd, tmp_path / "var_d2.pth")
    torch.save({"trainer": {"vae_local": seeded(VARImageModel, TINY).vae.state_dict()}}, tmp_path / "vae.pth")
    out = tmp_path / "converted"
    files = ["--var", str(tmp_path / "var_d2.pth"), "--vae", str(tmp_path / "vae.pth")]
    assert main(["convert", "var", *files, "--norm-groups", "4", "-o", str(out)]) == 0
    pipe = VARPipeline.from_pretrained(out)
    assert pipe.num_classes == 5 and pipe.generate(4, seed=0).images.shape == (1, 8, 8, 3)
    assert main(["convert", "var", "--var", str(tmp_path / "nope.pth"), "-o", str(out)]) == 3


def test_stream_equals_generate_and_seeds_repeat(tiny_ckpt):
    pipe = VARPipeline.from_pretrained(tiny_ckpt)
    chunks = list(pipe.stream(["red circle", 3], num_images=2, seed=5, preview=True))
    assert [c.index for c in chunks] == list(range(len(PATCH_NUMS))) and chunks[-1].is_last
    assert all(c.images is not None and c.images.shape == (2, 8, 8, 3) for c in chunks)
    result = pipe.generate(["red circle", 3], num_images=2, seed=5)
    assert np.array_equal(result.images, chunks[-1].images) and result.class_names == ("red circle", "blue square")
    again = pipe.generate(["red circle", 3], num_images=2, seed=5, kv="full")
    assert np.array_equal(again.images, result.images) and result.cache.max_context_bytes > 0


def test_profile_heads_command_profiles_a_var_checkpoint_for_hack(tiny_ckpt, tmp_path):
    out = tmp_path / "heads.json"
    assert main(["profile-heads", "--model", str(tiny_ckpt), "-o", str(out)]) == 0
    from genmotion.image_core.profile import load_head_profile

    pipe = VARPipeline.from_pretrained(tiny_ckpt)
    profile = load_head_profile(out, pipe.model.var)  # checked against this model's layers, heads and scales
    assert {k for row in profile["head_types"] for k in row} <= {"structural", "contextual"}
    pipe.head_profile = profile
    assert pipe.generate(0, num_images=1, seed=0, kv="hack").images.shape[0] == 1


def test_image_model_flag_names_a_variant(tmp_path):
    out = tmp_path / "var.png"
    assert main(["image", "--model", "var", "--class", "red circle", "-o", str(out)]) == 0 and out.is_file()
    nfig = tmp_path / "nfig.png"  # NFIG: kind var with the spectral tokenizer
    assert main(["image", "--model", "nfig", "--class", "blue triangle", "-n", "2", "-o", str(nfig)]) == 0
    assert Image.open(nfig).size == (64, 32)
    assert main(["image", "--model", "no-such-variant", "--class", "0", "-o", str(tmp_path / "a.png")]) == 2
    assert main(["image", "--model", "var", "--ckpt", "var-toy", "--class", "0", "-o", str(tmp_path / "b.png")]) == 2
    assert not (tmp_path / "a.png").exists() and not (tmp_path / "b.png").exists()
