"""Assemble the trained VFMF parts (`vfmf-encoder`, `vfmf-latent`, `vfmf` forecaster runs) into one `vfmf`
checkpoint directory, with the baseline forecasters (regression, PCA-latent flow) beside it under
`baselines/<name>/` and a model card."""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch

from genmotion.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_weights, read_checkpoint_config
from genmotion.config import from_dict
from genmotion.world.config import ForecasterConfig, VFMFConfig
from genmotion.world.forecaster import SpaceTimeForecaster
from genmotion.world.model import VFMFModel
from genmotion.world.pipeline import VFMFPipeline
from genmotion.world.train import load_encoder_stage, load_latent_stage

__all__ = ["assemble", "stage_summary"]


def stage_summary(directory: str | Path) -> str:
    """The command, steps and wall-time lines of a stage's generated card (empty if it has none)."""
    card = Path(directory) / "card.md"
    if not card.is_file():
        return ""
    keep = [ln for ln in card.read_text().splitlines() if re.match(r"\* (command|steps|wall time|\w+_\w+:)", ln)]
    return "\n".join(keep)


def assemble(
    encoder_dir: str | Path,
    latent_dir: str | Path,
    forecaster_dir: str | Path,
    out: str | Path,
    *,
    baselines: Mapping[str, str | Path] | None = None,
    card: str = "",
) -> Path:
    """Write the `vfmf` checkpoint `out` (bf16) from the stage checkpoints; copy `baselines` (name -> a
    `vfmf-forecaster` checkpoint directory) under `out/baselines/<name>/`."""
    enc, lat = load_encoder_stage(encoder_dir), load_latent_stage(latent_dir)
    fc_cfg = read_checkpoint_config(forecaster_dir)
    forecaster = SpaceTimeForecaster(from_dict(ForecasterConfig, fc_cfg["forecaster"], prefix="forecaster"))
    load_weights(forecaster, forecaster_dir)
    config = VFMFConfig(
        encoder=enc.pretrain.encoder.config,
        vae=lat.vae.config,
        decoder=lat.decoders.config,
        forecaster=forecaster.config,
        latent=str(fc_cfg["latent"]),  # type: ignore[arg-type]
    )
    model = VFMFModel(config)
    with torch.no_grad():
        model.encoder.load_state_dict(enc.pretrain.encoder.state_dict())
        model.feature_stats.load_state_dict(enc.feature_stats.state_dict())
        model.pca.load_state_dict(enc.pca.state_dict())
        model.vae.load_state_dict(lat.vae.state_dict())
        model.decoders.load_state_dict(lat.decoders.state_dict())
        model.forecaster.load_state_dict(forecaster.state_dict())
    path = VFMFPipeline(model).save_pretrained(out, card=card or None)
    for name, src in (baselines or {}).items():
        dst = path / "baselines" / name
        dst.mkdir(parents=True, exist_ok=True)
        for file in (CONFIG_NAME, WEIGHTS_NAME):
            shutil.copyfile(Path(src) / file, dst / file)
    return path


def default_card(stages: Mapping[str, str | Path], note: str = "") -> str:
    """A model card listing each stage's training command, steps and wall time."""
    lines = [
        "# vfmf-toy",
        "",
        "VFMF world model for the toy world's 3-D scenes (64 x 64 RGB, patch 8): a MaskFeat-pre-trained ViT "
        "encoder (4 layers concatenated, 384 channels), a channel-wise VAE to 16 channels, a space-time "
        "flow-matching forecaster and feature decoders (segmentation, depth bins, normals, RGB). Trained by "
        "genmotion on its own procedural data. Baseline forecasters (same architecture, steps and batch) are "
        "under `baselines/`.",
        "",
    ]
    for name, directory in stages.items():
        lines += [f"## {name}", stage_summary(directory) or "* (no card)", ""]
    if note:
        lines += ["## Notes", note, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """`python -m genmotion.world.export --encoder D --latent D --forecaster D [--baseline NAME=D] --out D`."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--encoder", required=True)
    parser.add_argument("--latent", required=True)
    parser.add_argument("--forecaster", required=True)
    parser.add_argument("--baseline", action="append", default=[], help="NAME=DIR")
    parser.add_argument("--note", default="")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    baselines = dict(item.split("=", 1) for item in args.baseline)
    stages = {
        "encoder": args.encoder,
        "latent + decoders": args.latent,
        "forecaster (flow, VAE latent)": args.forecaster,
    }
    stages.update({f"baseline {k}": v for k, v in baselines.items()})
    assemble(args.encoder, args.latent, args.forecaster, args.out, baselines=baselines,
             card=default_card(stages, args.note))  # fmt: skip


if __name__ == "__main__":
    main()
