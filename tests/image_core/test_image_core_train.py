"""`genmotion train` for both VAR tasks on a tiny class-per-folder tree of PNGs; exports load back as they are."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from genmotion.errors import InputError, UsageError
from genmotion.image_core.data import ImageFolder, parse_class, render_toy_images, toy_class_accuracy

TINY_VAE = {
    "vocab_size": 32, "latent_channels": 4, "channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
    "norm_groups": 4, "patch_nums": [1, 2, 3, 4],
}  # fmt: skip
TRAINER = {"max_steps": 2, "batch_size": 4, "accelerator": "cpu", "threads": 1, "progress": False, "log_every": 1}


def _folder(root):
    rng = np.random.default_rng(0)
    for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (root / name).mkdir(parents=True)
        for i in range(3):
            pixels = np.clip(np.array(colour) + rng.integers(-20, 20, (12, 10, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    (root / "red" / "notes.txt").write_text("not an image")
    return root


def _write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_both_tasks_train_on_an_image_folder_and_export_loadable_checkpoints(tmp_path):
    from genmotion.image_core.config import VARConfig
    from genmotion.image_core.convert import load_image_model, read_image_metadata
    from genmotion.image_core.pipeline import VARPipeline
    from genmotion.image_core.train import VARTask, VARTrainModel, load_tokenizer
    from genmotion.train.run import train

    root = _folder(tmp_path / "images")
    data = {"source": "folder", "root": str(root), "image_size": 8, "hflip": True, "eval_images": 4}
    tok = _write(
        tmp_path / "tok.yaml",
        {"task": "var-tokenizer", "model": {"vae": TINY_VAE, "codebook": "ema", "restart_every": 1}, "data": data,
         "trainer": {**TRAINER, "out_dir": str(tmp_path / "tok")}},
    )  # fmt: skip
    result = train(tok, command="test")
    assert result.steps == 2 and "eval_psnr_db" in result.metrics
    vae = load_tokenizer(result.checkpoint)
    assert vae.config.vocab_size == 32
    var_cfg = {
        "depth": 2,
        "head_dim": 8,
        "num_classes": 2,
        "vocab_size": 32,
        "latent_channels": 4,
        "patch_nums": (1, 2, 3, 4),
    }
    run = _write(
        tmp_path / "var.yaml",
        {"task": "var", "model": {"tokenizer": str(result.checkpoint), "var": {**var_cfg, "patch_nums": [1, 2, 3, 4]}},
         "data": data,
         "trainer": {**TRAINER, "out_dir": str(tmp_path / "var")}},
    )  # fmt: skip
    result = train(run, command="test")
    assert "eval_token_accuracy" in result.metrics
    model = load_image_model(result.checkpoint)  # no key surgery: the export is a var checkpoint
    names, _ = read_image_metadata(result.checkpoint)
    assert names == ("blue", "red") and model.config.var.depth == 2
    image = VARPipeline.from_pretrained(result.checkpoint).generate("red", num_images=2, seed=0).images
    assert image.shape == (2, 8, 8, 3) and image.dtype == np.uint8
    # fine-tuning from the exported checkpoint (as from a converted official one), with a new label set
    task = VARTask()
    tuned = task.build_model(
        VARTrainModel(init_from=str(result.checkpoint), var=VARConfig(**{**var_cfg, "num_classes": 3}))
    )
    assert tuned.var.num_classes == 3 and not any(p.requires_grad for p in tuned.vae.parameters())
    assert torch.equal(tuned.var.head.weight, model.var.head.weight)
    with pytest.raises(UsageError, match="depth"):
        task.build_model(VARTrainModel(init_from=str(result.checkpoint), var=VARConfig(**{**var_cfg, "depth": 3})))


def test_image_folder_layout_and_errors(tmp_path):
    folder = ImageFolder(_folder(tmp_path / "images"), 8)
    assert folder.classes == ["blue", "red"] and len(folder) == 6
    image, label = folder[5]
    assert image.shape == (8, 8, 3) and image.dtype == torch.uint8 and label == 1
    with pytest.raises(InputError, match="no images"):
        ImageFolder(tmp_path / "images" / "red", 8)  # a class folder, not the root


def test_toy_classes_render_deterministically_and_read_back():
    labels = torch.arange(12)
    a = render_toy_images(labels, torch.Generator().manual_seed(0), 32)
    b = render_toy_images(labels, torch.Generator().manual_seed(0), 32)
    assert torch.equal(a, b) and a.shape == (12, 32, 32, 3)
    assert toy_class_accuracy(a, labels) == 1.0
    assert parse_class("Red_Circle", ["red circle", "blue square"], 2) == 0
    assert parse_class("1", [], 2) == 1
    with pytest.raises(UsageError, match="out of range"):
        parse_class("2", [], 2)
    with pytest.raises(UsageError, match="unknown class"):
        parse_class("purple cube", ["red circle"], 1)
