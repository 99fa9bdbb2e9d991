"""The embedded default `flexvar-toy`: it loads by name, keeps its outputs (golden), draws the classes it is asked
for, and `genmotion image --model flexvar` runs it at a number of steps and at an image size it never saw."""

import torch
from PIL import Image

import genmotion
from genmotion.cli.app import main
from genmotion.image_core.data import classify_toy_images
from genmotion.registry import list_models

GOLDEN = {"tokens": [130, 127, 4, 122, 71, 122, 12, 253], "slice": [21, 24, 22, 23, 21, 21, 20, 18], "sum": 252826}


def test_flexvar_toy_golden():
    result = genmotion.load("flexvar-toy").generate("red circle", num_images=2, seed=0)
    assert result.tokens[-1][0, :8].tolist() == GOLDEN["tokens"]
    assert result.images[1, 8, :8, 0].tolist() == GOLDEN["slice"]
    assert int(result.images.astype("int64").sum()) == GOLDEN["sum"]


def test_flexvar_toy_is_registered_and_draws_requested_classes():
    assert "flexvar-toy" in {m.name for m in list_models()}
    result = genmotion.load("flexvar-toy").generate(list(range(12)), num_images=12, seed=0)
    predicted = classify_toy_images(torch.from_numpy(result.images))
    correct = sum(int(p == t) for p, t in zip(predicted, result.labels, strict=True))
    assert correct >= 10, f"{correct}/12 images read as their class (chance is 1/12)"


def test_image_model_flexvar_through_the_cli(tmp_path):
    out = tmp_path / "flex.png"
    assert main(["image", "--model", "flexvar", "--class", "green triangle", "--steps", "4", "-o", str(out)]) == 0
    assert Image.open(out).size == (32, 32)
    big = tmp_path / "big.png"
    assert (
        main(["image", "--model", "flexvar", "-c", "3", "--size", "48", "--schedule", "1,2,4,8,12", "-o", str(big)])
        == 0
    )
    assert Image.open(big).size == (48, 48)
    assert (
        main(["image", "--model", "flexvar", "-c", "3", "--size", "48", "--schedule", "1,2,4,8", "-o", str(big)]) == 2
    )
