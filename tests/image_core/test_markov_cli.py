"""HMAR and MVAR through the CLI and the bench: `genmotion image --model hmar|mvar` (with `--refine`), the
embedded hmar-toy / mvar-toy draw the classes asked for, bad schedules and cache flags exit 2, and the tensor
memory tracker of the bench counts what it should."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from image_core_tiny import TINY, seeded
from PIL import Image

import genmotion
from genmotion.cli.app import main
from genmotion.image_core.bench_markov import TensorMemory
from genmotion.image_core.config import VARImageConfig
from genmotion.image_core.convert import save_image_model
from genmotion.image_core.data import classify_toy_images
from genmotion.image_core.model import VARImageModel

NAMES = ("red circle", "red square", "blue circle", "blue square", "green circle")


@pytest.fixture(scope="module")
def tiny_hmar(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ckpt") / "tiny-hmar"
    config = VARImageConfig(vae=TINY.vae, var=dataclasses.replace(TINY.var, markov=True, mask_depth=1))
    save_image_model(seeded(VARImageModel, config), directory, class_names=NAMES)
    return directory


@pytest.mark.parametrize("model", ["hmar", "mvar"])
def test_image_model_hmar_and_mvar_write_images(model, tmp_path):
    out = tmp_path / f"{model}.png"
    extra = ["--refine", "1,1,2,2,2,1"] if model == "hmar" else []
    assert main(["image", "--model", model, "-c", "red circle", "-c", "blue square", "-n", "4", *extra,
                 "-o", str(out)]) == 0  # fmt: skip
    assert Image.open(out).size == (64, 64)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--refine", "1,2,x"], "comma-separated"),
        (["--refine", "1,1,2"], "has 3 entries"),
        (["--refine", "2,1,1,1"], "does not fit"),
        (["--kv", "scalekv"], "without a KV cache"),
        (["--tts", "4"], "keeps none"),
    ],
)
def test_bad_markov_flags_exit_2_with_one_line(tiny_hmar, tmp_path, capsys, args, message):
    code = main(["image", "--ckpt", str(tiny_hmar), "-c", "0", *args, "-o", str(tmp_path / "x.png")])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_refine_on_a_var_checkpoint_exits_2(tmp_path, capsys):
    assert main(["image", "--model", "var", "-c", "0", "--refine", "1,1,2,1,1,1", "-o", str(tmp_path / "x.png")]) == 2
    assert "HMAR" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["hmar-toy", "mvar-toy"])
def test_embedded_markov_models_draw_the_requested_classes(name):
    pipe = genmotion.load(name)
    assert pipe.config.var.markov
    result = pipe.generate(list(range(12)), num_images=12, seed=0)
    predicted = classify_toy_images(torch.from_numpy(result.images))
    correct = sum(int(p == t) for p, t in zip(predicted, result.labels, strict=True))
    assert correct >= 10, f"{name}: {correct}/12 read as their class (chance is 1/12)"
    assert result.cache.max_context_bytes == 0  # no KV cache is ever allocated


def test_hmar_toy_refined_golden():
    result = genmotion.load("hmar-toy").generate("red circle", num_images=2, seed=0, refine="1,1,1,2,2,1")
    assert result.tokens[-1][0, :8].tolist() == [121, 16, 84, 55, 54, 16, 55, 115]
    assert result.images[1, 8, :8, 0].tolist() == [22, 27, 26, 25, 25, 23, 24, 24]
    assert int(result.images.astype("int64").sum()) == 617222


def test_tensor_memory_counts_new_storages_once_and_frees_them():
    with TensorMemory() as memory:
        a = torch.zeros(1000)  # 4000 bytes
        b = a + 1  # 4000 more
        view = b[:10]  # a view: no new bytes
        a.add_(1)  # in place: no new bytes
        del a
        live_after_free = memory.live
        del b
        still_viewed = memory.live
        del view
    assert memory.peak == 8000 and live_after_free == 4000 and still_viewed == 4000 and memory.live == 0


def test_bench_parts_hmar_and_mvar_write_rows_and_memory(tmp_path):
    out = tmp_path / "image.json"
    assert main(["bench", "image", "--quick", "--threads", "1", "--json", str(out), "--parts", "hmar,mvar"]) == 0
    result = json.loads(out.read_text())
    settings = [(row["model"], row["setting"]) for row in result["table"]]
    assert [m for m, _ in settings] == ["hmar-toy", "hmar-toy", "mvar-toy"]
    for part in ("hmar", "mvar"):
        memory = result[part]["memory"]
        assert memory["model"]["kv_bytes"] == 0 and memory["var"]["kv_bytes"] > 0
        assert memory["var"]["peak_bytes"] > memory["model"]["peak_bytes"] > 0
