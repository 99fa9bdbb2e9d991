"""Official FlexVAR checkpoints (jiaosiyu1999/FlexVAR `FlexVARd16-epo179.pth`, d20, d24 + `FlexVAE.pth`,
Jiao et al., 2025) -> a genmotion `flexvar` checkpoint.

The transformer is VAR's blocks with FlexVAR's inputs; its keys are genmotion's `FlexVAR` ones except the
position map, stored as `pos_1LC` (1, C, 32, 32) and named `pos_map` here. Dropped: `attn_bias_for_masking`,
the block-causal mask of whichever schedule the model last ran (FlexVAR rebuilds it per call, and so does
genmotion: its shape is not even fixed). Not in the weights and taken from the official training setup: the
sides training drew (1..16), the 10-step default schedule (1, 2, 3, 4, 5, 6, 8, 10, 13, 16) and the 680-token
cap; sampling defaults are the official evaluation's (cfg 2.5, top-k 900, top-p 0.95).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from genmotion.checkpoint import save_pretrained
from genmotion.errors import InputError
from genmotion.image_core.config import VARSamplingConfig
from genmotion.image_core.convert import Source, _materialise, assemble
from genmotion.image_core.convert_checks import match_state_dict
from genmotion.image_core.flex_checkpoint import FlexVARImageModel, flexvar_checkpoint_config
from genmotion.image_core.flex_config import FlexVARConfig, FlexVARImageConfig
from genmotion.image_core.flex_model import FlexVAR
from genmotion.image_core.official_flexvae import load_official_flexvae
from genmotion.image_core.official_layouts import read_state_dict, require_layout

__all__ = [
    "FLEXVAR_SAMPLING",
    "convert_official_flexvar",
    "detect_flexvar_config",
    "flexvar_to_project_keys",
    "load_official_flexvar",
    "load_official_flexvar_model",
]

# eval_c2i.py: cfg 2.5 (genmotion counts guidance from 1: 3.5), top_k 900, top_p 0.95.
FLEXVAR_SAMPLING = VARSamplingConfig(guidance_scale=3.5, top_k=900, top_p=0.95)
_DROPPED = ("attn_bias_for_masking",)
_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.")


def flexvar_to_project_keys(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official FlexVAR state dict under genmotion's `FlexVAR` names."""
    return {("pos_map" if k == "pos_1LC" else k): v for k, v in sd.items() if k not in _DROPPED}


def detect_flexvar_config(sd: Mapping[str, torch.Tensor]) -> FlexVARConfig:
    """Depth, width, classes, vocabulary, latent channels, position-map side and attention norm from the keys."""
    for key in ("word_embed.weight", "class_emb.weight", "pos_start", "pos_1LC", "head.weight"):
        if key not in sd:
            raise InputError("this is not a FlexVAR transformer state dict", why=f"key {key!r} is missing")
    if "shared_ada_lin.1.weight" in sd or "blocks.0.ada_gss" in sd:
        raise InputError(
            "this FlexVAR checkpoint uses a shared AdaLN (shared_aln)",
            why="no published FlexVAR model does, and genmotion's FlexVAR has one AdaLN per block",
        )
    blocks = sorted({int(m.group(1)) for k in sd if (m := _BLOCK_RE.match(k))})
    if not blocks or blocks != list(range(len(blocks))):
        raise InputError("FlexVAR checkpoint blocks are missing or not numbered 0..depth-1", why=f"found {blocks[:8]}")
    depth, (C, Cv), pos = len(blocks), sd["word_embed.weight"].shape, sd["pos_1LC"].shape
    if C % depth or pos[1] != C or pos[2] != pos[3] or sd["pos_start"].shape != (1, 1, C):
        raise InputError(
            f"FlexVAR checkpoint shapes do not fit: width {C}, depth {depth}, pos_1LC {tuple(pos)}",
            why="FlexVAR uses width = 64 * depth, a square (1, C, P, P) position map and a (1, 1, C) pos_start",
        )
    return FlexVARConfig(
        depth=depth,
        head_dim=C // depth,
        num_classes=sd["class_emb.weight"].shape[0] - 1,
        vocab_size=sd["head.weight"].shape[0],
        latent_channels=Cv,
        position_size=pos[-1],
        mlp_ratio=sd["blocks.0.ffn.fc1.weight"].shape[0] / C,
        drop_path_rate=0.1 * depth / 24,
        attn_l2_norm="blocks.0.attn.scale_mul_1H11" in sd,
    )


def load_official_flexvar(
    source: Source, *, config: FlexVARConfig | None = None, dtype: torch.dtype = torch.float32
) -> FlexVAR:
    """An official FlexVAR transformer (plain state dict or a training checkpoint's ['trainer']['var_wo_ddp'])."""
    sd = read_state_dict(source, ("trainer", "var_wo_ddp"), ("model",))
    require_layout(sd, "flexvar")
    cfg = config or detect_flexvar_config(sd)
    mapped = flexvar_to_project_keys(sd)
    with torch.device("meta"):
        reference = FlexVAR(cfg).state_dict()
    for key, value in reference.items():
        if key.endswith("zero_k_bias"):
            mapped.setdefault(key, torch.zeros(value.shape))
    match_state_dict(reference, mapped, part="var")
    if any(bool(v.any()) for k, v in mapped.items() if k.endswith("zero_k_bias")):
        raise InputError("a FlexVAR key bias 'zero_k_bias' is not zero", why="it must be zero; the file is corrupt")
    model = _materialise(FlexVAR, cfg, mapped, dtype)
    assert isinstance(model, FlexVAR)
    return model


def load_official_flexvar_model(
    var_source: Source, vae_source: Source, *, norm_groups: int = 32, dtype: torch.dtype = torch.float32
) -> FlexVARImageModel:
    """FlexVAR transformer + FlexVAE tokenizer, the tokenizer run at the transformer's trained latent side."""
    var = load_official_flexvar(var_source, dtype=dtype)
    vae = load_official_flexvae(vae_source, latent_size=var.config.latent_size, norm_groups=norm_groups, dtype=dtype)
    try:
        config = FlexVARImageConfig(vae=vae.config, flexvar=var.config)
    except ValueError as e:
        raise InputError("the FlexVAR transformer and tokenizer files do not belong together", why=str(e)) from e
    return assemble(FlexVARImageModel, config, vae, var)


def convert_official_flexvar(
    var_source: Source,
    vae_source: Source,
    directory: str | Path,
    *,
    norm_groups: int = 32,
    dtype: torch.dtype | None = None,
    force: bool = False,
) -> Path:
    """`genmotion convert flexvar --var FlexVARd16-epo179.pth --vae FlexVAE.pth -o DIR`: a `flexvar` directory."""
    model = load_official_flexvar_model(var_source, vae_source, norm_groups=norm_groups)
    card = (
        f"# FlexVAR-d{model.config.flexvar.depth}\n\nConverted from the official FlexVAR checkpoints "
        "(jiaosiyu1999/FlexVAR): transformer and FlexVAE tokenizer. Sampling defaults: the official evaluation's "
        "(cfg 2.5, top-k 900, top-p 0.95).\n"
    )
    config = flexvar_checkpoint_config(model.config, sampling=FLEXVAR_SAMPLING)
    return save_pretrained(directory, model, config, card, dtype, force=force)
