"""Assembling the trained stages (encoder, latent + decoders, forecasters) into one `vfmf` checkpoint with
its baselines, loaded back by the registry's pipeline class."""

from __future__ import annotations

import numpy as np
import torch
from world_tiny import TINY, tiny_clip

from genmotion.checkpoint import save_pretrained
from genmotion.config import to_dict
from genmotion.world.export import assemble
from genmotion.world.forecaster import SpaceTimeForecaster
from genmotion.world.pipeline import VFMFPipeline
from genmotion.world.train import EncoderStage, LatentModel, LatentStage


def test_assemble_stages_into_one_checkpoint(tmp_path):
    torch.manual_seed(0)
    enc = EncoderStage(TINY.encoder, pca_dim=TINY.vae.latent_dim)
    save_pretrained(tmp_path / "enc", enc, {"kind": "vfmf-encoder", "encoder": to_dict(TINY.encoder), "pca_dim": 4})
    lat_cfg = LatentModel(vae=TINY.vae, decoder=TINY.decoder)
    save_pretrained(tmp_path / "lat", LatentStage(lat_cfg), {"kind": "vfmf-latent", **to_dict(lat_cfg)})
    for name, objective in (("flow", "flow"), ("reg", "regression")):
        import dataclasses

        fc = dataclasses.replace(TINY.forecaster, objective=objective)
        cfg = {"kind": "vfmf-forecaster", "forecaster": to_dict(fc), "latent": "vae"}
        save_pretrained(tmp_path / name, SpaceTimeForecaster(fc), cfg)
    out = assemble(tmp_path / "enc", tmp_path / "lat", tmp_path / "flow", tmp_path / "vfmf",
                   baselines={"regression": tmp_path / "reg"}, card="# card\n")  # fmt: skip
    pipe = VFMFPipeline.from_pretrained(out)
    assert (out / "card.md").read_text() == "# card\n"
    torch.testing.assert_close(pipe.model.encoder.pos_embed, enc.pretrain.encoder.pos_embed.bfloat16().float())
    base = pipe.with_forecaster(out / "baselines" / "regression")
    assert base.model.config.forecaster.objective == "regression" and pipe.model.config.forecaster.objective == "flow"
    assert base.model.encoder is pipe.model.encoder
    a = base.generate(tiny_clip(3), horizon=2, num_samples=2, seed=0)
    assert a.frames.shape == (2, 2, 16, 16, 3)
    np.testing.assert_array_equal(a.latents[0], a.latents[1])  # regression is deterministic
