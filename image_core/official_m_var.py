"""Official M-VAR checkpoints (OliverRensu/MVAR, the Mamba one; e.g. `d32.pth` of OliverRen/M-VAR) -> `m-var` models.

M-VAR's transformer state dict is VAR's (embeddings, attention, FFN, head: the same names) with nine AdaLN vectors
per block and a `mamba_ssm.Mamba2` mixer under `blocks.{i}.mamba.` (ngroups 1, a scalar D and A per scan head, a
gated RMSNorm after the gate). `mamba_var.MambaVARBlock` computes the same thing with a pure-torch scan, so the
mapping is a renaming (`mamba.` -> `mixer.`, `mamba.norm.weight` -> `mixer.norm_weight`); the scan's sizes
(state, expansion, head dim, conv width) are read from the shapes. The derived buffers the official code stores
(`lvl_1L`, the block-diagonal `attn_bias_for_masking`, `attn.patch_nums`, `attn.zero_k_bias`) are rebuilt and
compared, never trusted. The tokenizer is VAR's `vae_ch160v4096z32.pth`. Files load with weights_only only.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from genmotion.checkpoint import save_pretrained
from genmotion.errors import InputError
from genmotion.image_core.config import VARConfig
from genmotion.image_core.convert import Source, assemble, detect_var_config, load_official_vqvae, read_official
from genmotion.image_core.convert_checks import match_state_dict
from genmotion.image_core.mamba_var import (
    MambaVAR,
    MambaVARConfig,
    MambaVARImageConfig,
    MambaVARImageModel,
    scale_diagonal_bias,
)
from genmotion.image_core.mamba_var_io import mvar_checkpoint_config
from genmotion.image_core.official_layouts import distinct_storage, require_layout
from genmotion.image_core.var_model import level_ids

__all__ = [
    "convert_official_mvar",
    "detect_mvar_config",
    "load_official_mvar",
    "load_official_mvar_image",
    "map_official_mvar",
    "official_mvar_buffers",
    "rename_official_mvar",
]

_MIXER = re.compile(r"^(blocks\.\d+\.)mamba\.(.+)$")
_FIX = "pass an official M-VAR transformer (e.g. d32.pth of OliverRen/M-VAR) or an M-VAR training checkpoint"


def rename_official_mvar(key: str) -> str:
    """An official M-VAR key -> this project's (`blocks.i.mamba.X` -> `blocks.i.mixer.X`, the gated norm's
    weight -> `mixer.norm_weight`); every other key keeps its name."""
    m = _MIXER.match(key)
    if m is None:
        return key
    rest = "norm_weight" if m.group(2) == "norm.weight" else m.group(2)
    return f"{m.group(1)}mixer.{rest}"


def _scan_sizes(sd: Mapping[str, torch.Tensor], width: int) -> dict[str, int]:
    """d_state, d_conv, expand and the scan head dim of `blocks.0.mamba` (Mamba2 with ngroups 1, d_ssm = inner)."""
    p = "blocks.0.mamba."
    for key in ("in_proj.weight", "conv1d.weight", "A_log", "D", "out_proj.weight", "norm.weight"):
        if p + key not in sd:
            raise InputError("this is not an official M-VAR transformer", why=f"key {p + key!r} is missing", fix=_FIX)
    inner, heads = sd[p + "out_proj.weight"].shape[1], sd[p + "A_log"].numel()
    conv_channels, d_conv = sd[p + "conv1d.weight"].shape[0], sd[p + "conv1d.weight"].shape[-1]
    two_n = conv_channels - inner
    fits = inner % width == 0 and inner % heads == 0 and two_n > 0 and two_n % 2 == 0
    if not fits or sd[p + "in_proj.weight"].shape[0] != 2 * inner + two_n + heads or sd[p + "D"].numel() != heads:
        raise InputError(
            f"the Mamba2 mixer of {p[:-1]!r} has a layout this loader does not map",
            why=f"in_proj {tuple(sd[p + 'in_proj.weight'].shape)}, conv1d {conv_channels} channels, inner {inner}, "
            f"{heads} heads: M-VAR's Mamba2 has ngroups 1, d_ssm = expand * width and one D per head",
            fix=_FIX,
        )
    return {"d_state": two_n // 2, "d_conv": d_conv, "expand": inner // width, "ssm_head_dim": inner // heads}


def detect_mvar_config(sd: Mapping[str, torch.Tensor]) -> MambaVARConfig:
    """Depth, width, schedule, attn_l2_norm (on from d24; off in the d16/d20 files), classes, vocabulary and the
    scan's sizes from the keys of an official M-VAR state dict (official key names)."""
    base = detect_var_config(sd)  # its `markov` reads M-VAR's block-diagonal mask; M-VAR has no such flag
    if base.shared_aln:
        raise InputError("this M-VAR file has a shared AdaLN", why="M-VAR has no shared-AdaLN form", fix=_FIX)
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(VARConfig)}
    fields["markov"] = False
    return MambaVARConfig(**fields, **_scan_sizes(sd, base.width))


def official_mvar_buffers(cfg: MambaVARConfig) -> dict[str, torch.Tensor]:
    """The buffers official M-VAR stores, as its code computes them from the schedule."""
    out = {"lvl_1L": level_ids(cfg.patch_nums), "attn_bias_for_masking": scale_diagonal_bias(cfg.patch_nums)}
    counts = torch.tensor([p * p for p in cfg.patch_nums], dtype=torch.int32)
    for i in range(cfg.depth):
        out[f"blocks.{i}.attn.zero_k_bias"] = torch.zeros(cfg.width)
        out[f"blocks.{i}.attn.patch_nums"] = counts
    return out


def _check_and_drop_buffers(sd: dict[str, torch.Tensor], cfg: MambaVARConfig) -> None:
    """Compare the stored derived buffers with rebuilt ones; drop those genmotion rebuilds (keep zero_k_bias)."""
    for key, want in official_mvar_buffers(cfg).items():
        have = sd.get(key)
        if have is not None and (
            tuple(have.shape) != tuple(want.shape) or not torch.equal(have.detach().to("cpu", want.dtype), want)
        ):
            raise InputError(
                f"checkpoint key {key!r} does not match the buffer rebuilt from patch_nums={cfg.patch_nums}",
                why="wrong schedule (the file was made for another scale schedule) or a corrupt buffer",
                fix=_FIX,
            )
        if not key.endswith("zero_k_bias"):
            sd.pop(key, None)
        else:
            sd.setdefault(key, want)


def _read_mvar(source: Source, where: str) -> dict[str, torch.Tensor]:
    """The M-VAR state dict of `source` (plain, or ['trainer']['mvar_wo_ddp']); a training checkpoint of another
    kind (VAR's ['trainer'] parts) is a UsageError naming what it holds."""
    try:
        return read_official(source, "m-var")
    except InputError:
        for part in ("var", "vae"):
            try:
                other = read_official(source, part)
            except InputError:
                continue
            require_layout(other, "m-var")
        raise


def map_official_mvar(official: Mapping[str, torch.Tensor], cfg: MambaVARConfig) -> dict[str, torch.Tensor]:
    """An official M-VAR state dict (official names) -> the state dict of `MambaVAR(cfg)`: renamed, derived
    buffers compared and dropped, then every key and shape checked against the model (built on the meta device,
    so this costs nothing at full size and works on meta tensors, the buffers aside)."""
    sd = {rename_official_mvar(k): v for k, v in official.items()}
    _check_and_drop_buffers(sd, cfg)
    with torch.device("meta"):
        reference = MambaVAR(cfg).state_dict()
    match_state_dict(reference, sd, part="var")
    return sd


def load_official_mvar(
    source: Source, *, config: MambaVARConfig | None = None, dtype: torch.dtype = torch.float32
) -> MambaVAR:
    """An official M-VAR transformer; `config` (else detected) is checked key for key and shape for shape."""
    where = "the M-VAR file" if isinstance(source, Mapping) else str(source)
    official = _read_mvar(source, where)
    require_layout(official, "m-var")
    cfg = config or detect_mvar_config(official)
    sd = map_official_mvar(official, cfg)
    with torch.device("meta"):
        model = MambaVAR(cfg)
    cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    model.load_state_dict(distinct_storage(cast), assign=True)
    # The level map and mask are not saved (rebuilt at construction): fill them in on the CPU.
    model.lvl_1L = level_ids(cfg.patch_nums)
    model.attn_bias_for_masking = scale_diagonal_bias(cfg.patch_nums).to(dtype)
    assert not any(t.is_meta for t in (*model.parameters(), *model.buffers()))
    return model.eval()


def load_official_mvar_image(
    var_source: Source, vae_source: Source | None = None, *, norm_groups: int = 32, dtype: torch.dtype = torch.float32
) -> MambaVARImageModel:
    """Transformer + VAR tokenizer run at the transformer's schedule; without `vae_source` the tokenizer comes from
    the M-VAR training checkpoint (['trainer']['vae_local'])."""
    var = load_official_mvar(var_source, dtype=dtype)
    vae_sd = read_official(var_source if vae_source is None else vae_source, "vae")
    require_layout(vae_sd, "var-vae")
    vae = load_official_vqvae(vae_sd, patch_nums=var.patch_nums, norm_groups=norm_groups, dtype=dtype)
    return assemble(MambaVARImageModel, MambaVARImageConfig(vae=vae.config, var=var.config), vae, var)


def convert_official_mvar(
    var_source: Source,
    vae_source: Source | None,
    directory: str | Path,
    *,
    norm_groups: int = 32,
    dtype: torch.dtype | None = None,
    force: bool = False,
) -> Path:
    """`genmotion convert m-var --var F --vae F -o DIR`: official files -> an `m-var` checkpoint directory."""
    model = load_official_mvar_image(var_source, vae_source, norm_groups=norm_groups)
    depth = model.config.var.depth
    card = f"# M-VAR-d{depth}\n\nConverted from the official M-VAR checkpoint (OliverRensu/MVAR) and VAR's tokenizer.\n"
    return save_pretrained(directory, model, mvar_checkpoint_config(model.config), card, dtype, force=force)
