"""Official HMAR checkpoints (NVlabs/HMAR `hmar-d16.pth` ... `hmar-d30.pth`, Kumbong et al., 2025) -> genmotion.

HMAR is VAR's backbone split in three: a shared trunk `base_blocks` (depth - 8 blocks), the next-scale branch
`ns_blocks` + `ns_head_nm`/`ns_head`, and the masked-refinement branch `mask_blocks` + `mask_head_nm`/`mask_head`
with a `mask_embed`; `word_embed` has its bias apart (`word_embed_bias`), and the stored training mask
`attn_bias_for_masking` is block-diagonal by scale. In genmotion that is a `var` checkpoint with `markov` and
`mask_depth`: trunk + next-scale branch are `blocks.0 .. depth-1`, the next-scale head is `head_nm`/`head`.
The tokenizer is VAR's own `vae_ch160v4096z32.pth`. Every key is mapped (or refused); nothing is dropped.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from genmotion.errors import InputError
from genmotion.image_core.config import VARConfig, VARImageConfig, VARSamplingConfig
from genmotion.image_core.convert import (
    Source,
    assemble,
    detect_var_config,
    load_official_var,
    load_official_vqvae,
    save_image_model,
)
from genmotion.image_core.model import VARImageModel
from genmotion.image_core.official_layouts import read_state_dict, require_layout
from genmotion.image_core.var_model import VAR

__all__ = [
    "HMAR_SAMPLING",
    "convert_official_hmar",
    "detect_hmar_config",
    "hmar_sampling",
    "hmar_to_var_keys",
    "load_official_hmar",
    "load_official_hmar_model",
]

# The official sampling config (config/sample/hmar-d*.yaml): cfg 1.7 (genmotion counts guidance from 1, so
# 2.7), top_k 1000, top_p 0.99; mask_schedule [[1], [1, 3], [1, 1, 2, 5], [16], ...] = passes per scale.
HMAR_SAMPLING = VARSamplingConfig(guidance_scale=2.7, top_k=1000, top_p=0.99)
_HMAR_PASSES = (1, 2, 4)  # the official mask_schedule's passes at the first scales; one pass beyond
_BRANCH_RE = re.compile(r"^(base_blocks|ns_blocks|mask_blocks)\.(\d+)\.(.*)$")


def _count(sd: Mapping[str, torch.Tensor], branch: str) -> int:
    ids = sorted({int(m.group(2)) for k in sd if (m := _BRANCH_RE.match(k)) and m.group(1) == branch})
    if ids != list(range(len(ids))):
        raise InputError(f"HMAR checkpoint {branch} are not numbered 0..n-1", why=f"found {ids[:8]}")
    return len(ids)


def hmar_to_var_keys(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official HMAR state dict under genmotion's `VAR` names (trunk + next-scale blocks -> `blocks.i`)."""
    trunk, branch, masks = (_count(sd, b) for b in ("base_blocks", "ns_blocks", "mask_blocks"))
    if not branch or branch != masks:
        raise InputError(
            f"HMAR checkpoint has {branch} next-scale and {masks} refinement blocks",
            why="HMAR's two branches have the same depth (n_layers_train, 8 in the official models)",
            fix="pass an official hmar-d*.pth file",
        )
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        m = _BRANCH_RE.match(key)
        if m and m.group(1) == "base_blocks":
            key = f"blocks.{m.group(2)}.{m.group(3)}"
        elif m and m.group(1) == "ns_blocks":
            key = f"blocks.{trunk + int(m.group(2))}.{m.group(3)}"
        elif key.startswith(("ns_head_nm.", "ns_head.")):
            key = key[len("ns_") :]
        elif key == "word_embed_bias":
            key = "word_embed.bias"
        out[key] = value
    return out


def detect_hmar_config(sd: Mapping[str, torch.Tensor]) -> VARConfig:
    """Depth, width, schedule, refinement depth and the rest from an HMAR state dict (official names)."""
    renamed = hmar_to_var_keys(sd)
    cfg = detect_var_config(renamed)
    if not cfg.markov:
        raise InputError(
            "the HMAR checkpoint's attn_bias_for_masking is not block-diagonal by scale",
            why="HMAR attends only within each scale; the stored mask says otherwise (corrupt file or wrong kind)",
            fix="pass an official hmar-d*.pth file",
        )
    return dataclasses.replace(cfg, mask_depth=_count(sd, "mask_blocks"))


def load_official_hmar(source: Source, *, config: VARConfig | None = None, dtype: torch.dtype = torch.float32) -> VAR:
    """An official HMAR transformer as a scale-Markov `VAR` with its refinement branch, checked key for key."""
    sd = read_state_dict(source, (), ("model",))
    require_layout(sd, "hmar")
    cfg = config or detect_hmar_config(sd)
    return load_official_var(hmar_to_var_keys(sd), config=cfg, dtype=dtype)


def hmar_sampling(var: VAR) -> VARSamplingConfig:
    """HMAR's official sampling settings for this model's schedule (refinement passes cut to its scales)."""
    K = len(var.patch_nums)
    passes = [min(p, max(1, s * s)) for p, s in zip(_HMAR_PASSES + (1,) * K, var.patch_nums, strict=False)]
    return dataclasses.replace(HMAR_SAMPLING, refine=tuple(passes[:K]))


def load_official_hmar_model(
    var_source: Source, vae_source: Source, *, norm_groups: int = 32, dtype: torch.dtype = torch.float32
) -> VARImageModel:
    """HMAR transformer + VAR's tokenizer (HMAR ships none of its own) run at the transformer's schedule."""
    var = load_official_hmar(var_source, dtype=dtype)
    vae_sd = read_state_dict(vae_source, ("trainer", "vae_local"), ("model",))
    require_layout(vae_sd, "var-vae")
    vae = load_official_vqvae(vae_sd, patch_nums=var.patch_nums, norm_groups=norm_groups, dtype=dtype)
    return assemble(VARImageModel, VARImageConfig(vae=vae.config, var=var.config), vae, var)


def convert_official_hmar(
    var_source: Source,
    vae_source: Source,
    directory: str | Path,
    *,
    norm_groups: int = 32,
    dtype: torch.dtype | None = None,
    force: bool = False,
) -> Path:
    """`genmotion convert hmar --var hmar-d16.pth --vae vae_ch160v4096z32.pth -o DIR`: a `var` checkpoint
    directory (markov, mask_depth) with HMAR's sampling settings as its defaults."""
    model = load_official_hmar_model(var_source, vae_source, norm_groups=norm_groups)
    depth, refine = model.config.var.depth, model.config.var.mask_depth
    card = (
        f"# HMAR-d{depth}\n\nConverted from the official HMAR checkpoints (NVlabs/HMAR): scale-Markov attention, "
        f"a {refine}-block masked-refinement branch. Sampling defaults: HMAR's (cfg 1.7, top-k 1000, top-p 0.99).\n"
    )
    sampling = hmar_sampling(model.var)
    return save_image_model(model, directory, card=card, dtype=dtype, sampling=sampling, force=force)
