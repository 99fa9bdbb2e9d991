"""Checks behind the official-checkpoint converter: tokenizer detection, key/shape matching with a
likely cause for every mismatch, and the rebuilt-and-compared derived buffers of VAR.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from genmotion.errors import InputError
from genmotion.image_core.config import VARConfig
from genmotion.image_core.var_model import attention_bias, level_ids
from genmotion.nn.vqvae_config import VQVAEConfig

__all__ = ["check_var_buffers", "detect_vqvae_config", "match_state_dict", "rebuilt_var_buffers"]

_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.")

# (key pattern, likely cause) in priority order; the first pattern that matches names the cause.
_VAR_CAUSES = (
    (r"\.mixer\.", "a different Mamba2 layout of M-VAR (official `mamba.`: d_state, expand, headdim, ngroups)"),
    (r"scale_mul_1H11", "the attention L2-norm setting differs (attn_l2_norm)"),
    (
        r"ada_gss|shared_ada_lin|blocks\.\d+\.ada_lin",
        "the shared-AdaLN setting differs (shared_aln; VAR-d36-s uses it)",
    ),
    (r"^(pos_1LC|pos_start|lvl_embed|lvl_1L|attn_bias_for_masking)", "wrong schedule (patch_nums)"),
    (r"^class_emb", "a different number of classes (num_classes)"),
    (r"^head\.", "a different vocabulary size, or wrong depth (width = 64 * depth)"),
    (r"", "wrong depth (the width is 64 * depth)"),
)
_VAE_CAUSES = (
    (r"quant_resi", "a different phi sharing (share_quant_resi) or quant_resi"),
    (r"quantize\.embedding", "a different vocabulary size or latent channels"),
    (
        r"(^|\.)(quant_conv|post_quant_conv|conv_out)\.|decoder\.conv_in",
        "different latent channels or quant_conv kernel",
    ),
    (r"attn", "a different attention layout (using_sa / using_mid_sa)"),
    (r"", "a different encoder/decoder layout (channels, channel_mult, num_res_blocks)"),
)


def _cause(key: str, part: str) -> str:
    for pattern, cause in _VAR_CAUSES if part == "var" else _VAE_CAUSES:
        if re.search(pattern, key):
            return cause
    return "a different architecture"


def _fix(part: str) -> str:
    if part == "var":
        return "load without an explicit config so depth and schedule are detected, or pass the matching var_d*.pth"
    return "pass the official vae_ch160v4096z32.pth, or a tokenizer config that matches the file"


def _depth(sd: Mapping[str, torch.Tensor]) -> int:
    return len({m.group(1) for k in sd if (m := _BLOCK_RE.match(k))})


def match_state_dict(reference: Mapping[str, torch.Tensor], sd: Mapping[str, torch.Tensor], *, part: str) -> None:
    """Raise `InputError` naming the first key whose presence or shape differs, with its likely cause."""
    if part == "var":
        want, have = _depth(reference), _depth(sd)
        if want != have:
            # The first block one side has and the other lacks names the mismatch.
            longer = sd if have > want else reference
            key = next(k for k in longer if k.startswith(f"blocks.{min(want, have)}."))
            raise InputError(
                f"checkpoint key {key!r} does not fit the model",
                why=f"wrong depth: the checkpoint has {have} blocks (VAR-d{have}) but the model has depth {want}",
                fix=_fix(part),
            )
    for key in reference:
        if key not in sd:
            raise InputError(f"checkpoint key {key!r} is missing", why=f"likely {_cause(key, part)}", fix=_fix(part))
    for key in sd:
        if key not in reference:
            raise InputError(f"checkpoint key {key!r} is unexpected", why=f"likely {_cause(key, part)}", fix=_fix(part))
    for key, ref in reference.items():
        if tuple(sd[key].shape) != tuple(ref.shape):
            raise InputError(
                f"checkpoint key {key!r} has shape {tuple(sd[key].shape)}, the model expects {tuple(ref.shape)}",
                why=f"likely {_cause(key, part)}",
                fix=_fix(part),
            )


def rebuilt_var_buffers(cfg: VARConfig) -> dict[str, torch.Tensor]:
    """The derived buffers of VAR, computed from the config."""
    out = {"lvl_1L": level_ids(cfg.patch_nums), "attn_bias_for_masking": attention_bias(cfg)}
    for i in range(cfg.depth):
        out[f"blocks.{i}.attn.zero_k_bias"] = torch.zeros(cfg.width)
    return out


def check_var_buffers(sd: Mapping[str, torch.Tensor], cfg: VARConfig) -> None:
    """Compare the checkpoint's derived buffers (where present) with rebuilt ones."""
    for key, want in rebuilt_var_buffers(cfg).items():
        if key not in sd:
            continue
        have = sd[key].detach().to("cpu")
        if tuple(have.shape) != tuple(want.shape) or not torch.equal(have.to(want.dtype), want):
            mask = "the scale-Markov mask" if cfg.markov else "the block-causal mask"
            what = mask if "attn_bias" in key else "the level map" if "lvl" in key else "a zero bias"
            raise InputError(
                f"checkpoint key {key!r} does not match {what} rebuilt from patch_nums={cfg.patch_nums}",
                why="wrong schedule (the file was made for another scale schedule) or a corrupt buffer"
                if "zero_k" not in key
                else "the key bias of VAR attention must be zero; the file is corrupt",
                fix=_fix("var"),
            )


def detect_vqvae_config(
    sd: Mapping[str, torch.Tensor], *, patch_nums: tuple[int, ...], norm_groups: int = 32
) -> VQVAEConfig:
    """Channels, channel_mult, res blocks, attention, latent channels, vocabulary and phi sharing from the keys.

    `patch_nums` and `norm_groups` are not recorded in the weights and come from the caller.
    """
    for key in (
        "encoder.conv_in.weight",
        "quant_conv.weight",
        "quantize.embedding.weight",
        "encoder.down.0.block.0.conv1.weight",
    ):
        if key not in sd:
            raise InputError(
                "this is not a VAR tokenizer state dict",
                why=f"key {key!r} is missing",
                fix="pass vae_ch160v4096z32.pth (or a VAR training checkpoint) as the tokenizer",
            )
    ch = sd["encoder.conv_in.weight"].shape[0]
    levels = sorted({int(m.group(1)) for k in sd if (m := re.match(r"^encoder\.down\.(\d+)\.", k))})
    res_blocks = len({m.group(1) for k in sd if (m := re.match(r"^encoder\.down\.0\.block\.(\d+)\.", k))})
    mult = tuple(sd[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] // ch for i in levels)
    phis = {m.group(1) for k in sd if (m := re.match(r"^quantize\.quant_resi\.qresi_ls\.(\d+)\.", k))}
    per_scale = {m.group(1) for k in sd if (m := re.match(r"^quantize\.quant_resi\.(\d+)\.", k))}
    if phis:
        share, ratio = len(phis), 0.5
    elif "quantize.quant_resi.qresi.weight" in sd:
        share, ratio = 1, 0.5
    elif per_scale:
        share, ratio = 0, 0.5
        if len(per_scale) != len(patch_nums):
            raise InputError(
                f"the tokenizer has {len(per_scale)} per-scale phis but the schedule has {len(patch_nums)} scales",
                why="wrong schedule for a tokenizer without phi sharing",
            )
    else:
        share, ratio = 4, 0.0
    widths = sorted({ch * m for m in mult})
    if any(w % norm_groups for w in widths):
        raise InputError(
            f"GroupNorm with {norm_groups} groups does not divide the tokenizer widths {widths}",
            fix="pass norm_groups matching the model the file came from",
        )
    return VQVAEConfig(
        vocab_size=sd["quantize.embedding.weight"].shape[0],
        latent_channels=sd["quant_conv.weight"].shape[0],
        channels=ch,
        channel_mult=mult,
        num_res_blocks=res_blocks,
        norm_groups=norm_groups,
        using_sa=f"encoder.down.{levels[-1]}.attn.0.qkv.weight" in sd,
        using_mid_sa="encoder.mid.attn_1.qkv.weight" in sd,
        in_channels=sd["encoder.conv_in.weight"].shape[1],
        quant_conv_kernel=sd["quant_conv.weight"].shape[-1],
        quant_resi=ratio,
        share_quant_resi=share,
        patch_nums=tuple(patch_nums),
    )
