"""The M-VAR pipeline and `genmotion image --model m-var` / `--ckpt <m-var dir>` through the CLI: images written,
stream() == generate(), same seed same images, KV-cache flags refused (exit 2), the task's bad settings."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from image_core_tiny import TINY as TINY_VAR_IMAGE
from image_core_tiny import TINY_VAE, TINY_VAR, seeded
from PIL import Image

import genmotion
from genmotion.cli.app import main
from genmotion.errors import UsageError
from genmotion.image_core.convert import save_image_model
from genmotion.image_core.data import ImageDataConfig
from genmotion.image_core.mamba_var import MambaVARConfig, MambaVARImageConfig, MambaVARImageModel
from genmotion.image_core.mamba_var_io import save_mvar_model
from genmotion.image_core.mamba_var_pipeline import MambaVARPipeline
from genmotion.image_core.mamba_var_train import MambaVARTask, MambaVARTrainModel
from genmotion.image_core.model import VARImageModel

NAMES = ("red circle", "red square", "blue circle", "blue square", "green circle")
TINY = MambaVARImageConfig(
    vae=TINY_VAE, var=MambaVARConfig(**dataclasses.asdict(TINY_VAR), d_state=4, ssm_head_dim=8, scan_chunk=5)
)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ckpt") / "tiny-m-var"
    save_mvar_model(seeded(MambaVARImageModel, TINY), directory, class_names=NAMES)
    return directory


def test_image_from_an_m_var_checkpoint(tiny_ckpt, tmp_path):
    out = tmp_path / "grid.png"
    assert main(["image", "--ckpt", str(tiny_ckpt), "--class", "blue square", "--num", "2", "-o", str(out)]) == 0
    assert Image.open(out).size == (16, 8)  # 2 images of 8x8 side by side
    common = ["image", "--ckpt", str(tiny_ckpt), "--class", "0"]
    assert main([*common, "--kv", "scalekv", "-o", str(tmp_path / "a.png")]) == 2  # no KV cache to compress
    assert main([*common, "--tts", "2", "-o", str(tmp_path / "b.png")]) == 2
    assert not (tmp_path / "a.png").exists() and not (tmp_path / "b.png").exists()


def test_image_model_m_var_runs_the_embedded_default(tmp_path):
    out = tmp_path / "m.png"
    assert main(["image", "--model", "m-var", "--class", "red circle", "--num", "2", "-o", str(out)]) == 0
    assert Image.open(out).size == (64, 32)
    assert genmotion.load("m-var-toy").kind == "m-var"


def test_stream_equals_generate_and_seeds_repeat(tiny_ckpt, tmp_path):
    pipe = MambaVARPipeline.from_pretrained(tiny_ckpt)
    chunks = list(pipe.stream([0, 3], num_images=2, seed=4))
    result = pipe.generate([0, 3], num_images=2, seed=4)
    assert np.array_equal(chunks[-1].images, result.images) and result.images.shape == (2, 8, 8, 3)
    assert [c.tokens.shape[1] for c in chunks] == [1, 4, 9, 16]
    # the scan state does not grow: the same bytes are carried after every scale
    assert len(set(result.cache.context_bytes)) == 1 and result.cache.max_context_bytes > 0
    assert not np.array_equal(pipe.generate(0, seed=5).images, pipe.generate(0, seed=6).images)
    assert result.class_names == ("red circle", "blue square")
    again = MambaVARPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "again"))
    assert np.array_equal(again.generate([0, 3], num_images=2, seed=4).images, result.images)
    with pytest.raises(UsageError, match="KV cache"):
        pipe.generate(0, kv="hack")


def test_task_refuses_init_from_and_a_missing_tokenizer():
    task = MambaVARTask()
    with pytest.raises(UsageError, match="init_from"):
        task.build_model(MambaVARTrainModel(var=TINY.var, tokenizer="x", init_from="y"))
    with pytest.raises(UsageError, match="model.tokenizer"):
        task.build_model(MambaVARTrainModel(var=TINY.var))


def test_task_loss_trains_on_a_var_tokenizer(tmp_path):
    save_image_model(seeded(VARImageModel, TINY_VAR_IMAGE), tmp_path / "var")
    task = MambaVARTask()
    model = task.build_model(MambaVARTrainModel(var=TINY.var, tokenizer=str(tmp_path / "var")))
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    loss, logs = task.loss(model, (images, torch.tensor([0, 4])))
    loss.backward()
    assert torch.isfinite(loss) and 0 <= logs["token_accuracy"] <= 1
    assert all(p.grad is None for p in model.vae.parameters())  # the tokenizer stays frozen
    assert model.var.head.weight.grad is not None


def test_bench_part_m_var_adds_a_table_row_and_the_scale_chart(tmp_path):
    out, plot = tmp_path / "image.json", tmp_path / "image.png"
    args = ["bench", "image", "--quick", "--threads", "1", "--parts", "m_var", "--json", str(out), "--plot", str(plot)]
    assert main(args) == 0
    result = json.loads(out.read_text())
    (row,) = result["table"]
    assert row["model"] == "m-var-toy" and row["samples"] == 24 and 0.0 <= row["class_accuracy"] <= 1.0
    cost = result["m_var"]["inter_scale"]
    assert set(cost["fit"]) == set(cost["layer_seconds_per_scale"]) | set(cost["block_seconds_per_scale"])
    assert all(len(s) == 6 and min(s) > 0 for s in cost["layer_seconds_per_scale"].values())
    assert Image.open(tmp_path / "image_m_var_scales.png").size == (760, 660)


def test_task_evaluates_with_its_own_sampler_and_exports_kind_m_var(tmp_path):
    save_image_model(seeded(VARImageModel, TINY_VAR_IMAGE), tmp_path / "var")
    task = MambaVARTask()
    var_cfg = dataclasses.replace(TINY.var, num_classes=12)  # the toy world's 12 classes
    model_cfg = MambaVARTrainModel(var=var_cfg, tokenizer=str(tmp_path / "var"))
    model = task.build_model(model_cfg)
    data = ImageDataConfig(image_size=8, eval_images=4, sizes=("large",))
    assert task.checkpoint_config(model_cfg, data)["kind"] == "m-var"
    metrics = task.evaluate(model, model_cfg, data)
    assert 0 <= metrics["eval_token_accuracy"] <= 1 and 0 <= metrics["eval_class_accuracy"] <= 1
