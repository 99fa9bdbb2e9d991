"""`genmotion train` for both FlowAR tasks on the toy world at 8x8: the exports load as a pipeline, a resumed run
continues from its checkpoint, and bad settings are one clear UsageError."""

from __future__ import annotations

import pytest
import torch
import yaml

from genmotion.errors import UsageError

TINY_KL = {"latent_channels": 3, "latent_size": 4, "channels": 8, "channel_mult": [1, 2], "norm_groups": 4}
TINY_FLOWAR = {
    "depth": 2, "head_dim": 8, "num_classes": 12, "latent_channels": 3, "patch_nums": [1, 2, 4], "z_width": 16,
    "flow_width": 16, "flow_depth": 2,
}  # fmt: skip
TRAINER = {"max_steps": 2, "batch_size": 4, "accelerator": "cpu", "threads": 1, "progress": False, "log_every": 1}
DATA = {"source": "toyworld", "image_size": 8, "sizes": ["large"], "eval_images": 4}


def _write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def test_both_tasks_train_resume_and_export_a_loadable_pipeline(tmp_path):
    import genmotion
    from genmotion.image_core.flowar_pipeline import FlowARPipeline
    from genmotion.image_core.flowar_train import load_kl_autoencoder
    from genmotion.train.run import train

    tok = _write(tmp_path / "tok.yaml", {
        "task": "flowar-tokenizer", "model": {"vae": TINY_KL}, "data": DATA,
        "trainer": {**TRAINER, "out_dir": str(tmp_path / "tok")},
    })  # fmt: skip
    result = train(tok, command="test")
    assert result.steps == 2 and {"eval_psnr_db", "eval_recon_class_accuracy"} <= set(result.metrics)
    assert load_kl_autoencoder(result.checkpoint).config.latent_size == 4
    run = {
        "task": "flowar", "data": DATA,
        "model": {"tokenizer": str(result.checkpoint), "flowar": TINY_FLOWAR, "stats_images": 8,
                  "sampling": {"num_steps": 2}},
        "trainer": {**TRAINER, "ckpt_every": 1, "out_dir": str(tmp_path / "flowar")},
    }  # fmt: skip
    first = train(_write(tmp_path / "flowar.yaml", run), command="test")
    assert first.steps == 2 and {"eval_velocity_loss", "eval_class_accuracy"} <= set(first.metrics)
    pipe = genmotion.load(first.checkpoint)
    assert isinstance(pipe, FlowARPipeline) and pipe.sampling.num_steps == 2
    assert bool(pipe.model.latent_std.gt(0).all())  # the latent statistics were measured and shipped
    assert pipe.class_names[0] == "red circle"
    images = pipe.generate(["red circle", 5], num_images=2, seed=0).images
    assert images.shape == (2, 8, 8, 3)
    run["trainer"] = {**run["trainer"], "max_steps": 3, "resume": "last"}
    resumed = train(_write(tmp_path / "flowar.yaml", run), command="test")
    assert resumed.steps == 3
    back = genmotion.load(resumed.checkpoint)
    torch.testing.assert_close(back.model.latent_std, pipe.model.latent_std)  # kept from the first run


@pytest.mark.parametrize(
    ("model", "match"),
    [({"label_drop": 1.0}, "label_drop"), ({"flow_batch_mul": 0}, "flow_batch_mul"), ({}, "model.tokenizer")],
)
def test_bad_model_settings_are_usage_errors(model, match):
    from genmotion.image_core.flowar_train import FlowARTask, FlowARTrainModel

    cfg = FlowARTrainModel(tokenizer=None if not model else "x", **model)
    with pytest.raises(UsageError, match=match):
        FlowARTask().build_model(cfg)
