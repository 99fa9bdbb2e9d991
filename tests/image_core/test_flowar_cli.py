"""`genmotion image` on FlowAR checkpoints (a tiny one and the embedded `flowar-toy`), the FlowAR pipeline's
stream() == generate(), and settings FlowAR cannot take: one clear line, exit 2."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flowar_tiny import NAMES, tiny_model
from PIL import Image

import genmotion
from genmotion.cli.app import main
from genmotion.errors import UsageError
from genmotion.image_core.data import classify_toy_images
from genmotion.image_core.flowar_model import save_flowar_model
from genmotion.image_core.flowar_pipeline import FlowARPipeline
from genmotion.registry import list_models


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ckpt") / "tiny-flowar"
    save_flowar_model(tiny_model(), directory, class_names=NAMES)
    return directory


def test_image_writes_a_grid_from_a_flowar_checkpoint(tiny_ckpt, tmp_path):
    out = tmp_path / "grid.png"
    assert main(["image", "--ckpt", str(tiny_ckpt), "-c", "red circle", "-c", "3", "-n", "4", "-o", str(out)]) == 0
    assert np.asarray(Image.open(out)).shape == (16, 16, 3)  # 2 x 2 grid of 8 x 8


@pytest.mark.parametrize(
    "args",
    [
        ["--top-k", "5"],
        ["--temperature", "0.5"],
        ["--kv", "scalekv"],
        ["--tts", "2"],
        ["--class", "no such class"],
        ["--guidance", "-1"],
    ],
)
def test_settings_flowar_cannot_take_exit_2(tiny_ckpt, tmp_path, args, capsys):
    code = main(["image", "--ckpt", str(tiny_ckpt), "-c", "0", *args, "-o", str(tmp_path / "x.png")])
    assert code == 2
    assert not (tmp_path / "x.png").exists()


def test_stream_equals_generate_and_seeds_repeat(tiny_ckpt):
    pipe = genmotion.load(tiny_ckpt)
    assert isinstance(pipe, FlowARPipeline)
    chunks = list(pipe.stream([0, 1], num_images=2, seed=3, num_steps=2))
    assert [c.index for c in chunks] == [0, 1, 2] and chunks[-1].is_last and chunks[0].images is None
    result = pipe.generate([0, 1], num_images=2, seed=3, num_steps=2)
    assert np.array_equal(result.images, chunks[-1].images) and result.class_names == NAMES[:2]
    assert [t.shape for t in result.tokens] == [(2, 1, 3), (2, 4, 3), (2, 16, 3)]
    other = pipe.generate([0, 1], num_images=2, seed=4, num_steps=2)
    assert not np.array_equal(result.images, other.images)
    with pytest.raises(UsageError, match="num_steps"):
        pipe.generate(0, num_steps=0)
    with pytest.raises(UsageError, match="top_k"):
        pipe.generate(0, top_k=3)


def test_model_flowar_runs_the_embedded_default_and_draws_the_requested_classes(tmp_path):
    assert "flowar-toy" in {m.name for m in list_models()}
    out = tmp_path / "flowar.png"
    assert main(["image", "--model", "flowar", "--class", "blue triangle", "-n", "2", "-o", str(out)]) == 0
    assert np.asarray(Image.open(out)).shape == (32, 64, 3)
    assert main(["image", "--model", "flowar", "--ckpt", "flowar-toy", "-c", "0", "-o", str(tmp_path / "b.png")]) == 2
    pipe = genmotion.load("flowar-toy")
    result = pipe.generate(list(range(12)), num_images=12, seed=0)
    read = classify_toy_images(torch.from_numpy(result.images))
    correct = sum(int(r == t) for r, t in zip(read, result.labels, strict=True))
    assert correct >= 7, f"{correct}/12 images read as their class (the card reports 70.8 %; chance is 1/12)"


def test_bench_part_flowar_adds_a_table_row(tmp_path):
    import json

    out = tmp_path / "image.json"
    assert main(["bench", "image", "--quick", "--threads", "1", "--parts", "flowar", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["table"]
    assert row["model"] == "flowar-toy" and row["samples"] == 24 and row["tokens_per_image"] == 85
    assert "Euler steps/scale" in row["setting"] and 0.0 <= row["class_accuracy"] <= 1.0
