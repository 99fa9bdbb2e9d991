"""FlexVAR's official tokenizer (`FlexVAE.pth`, LlamaGen's VQ-16 layout) -> genmotion's `FlexVQVAE`.

The network is the one genmotion's VQ tokenizer builds (LDM encoder/decoder, GroupNorm 32, attention at the
lowest resolution and in the middle), under other names and with three differences the config records:
the encoder output and decoder input are 256 wide around 1x1 `quant_conv`/`post_quant_conv` (LlamaGen's
`z_channels`: `bottleneck_channels`), the codebook is L2-normalised (`using_znorm`), and there is one scale.
Renamed: `conv_blocks.{level}.res` -> `down|up.{level}.block` (the decoder's list runs coarse to fine, so its
index i is level n-1-i), `mid.0/1/2` -> `mid.block_1/attn_1/block_2`, attention `q`/`k`/`v` -> one `qkv`.
Dropped: `quantize.codebook_used`, LlamaGen's history of recently used codes (training bookkeeping; the
codebook-usage buffer starts at zero, as VAR's loader does for another schedule).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from genmotion.errors import InputError
from genmotion.image_core.convert import Source, _materialise
from genmotion.image_core.convert_checks import match_state_dict
from genmotion.image_core.flex_tokenizer import FlexVQVAE
from genmotion.image_core.official_layouts import read_state_dict, require_layout
from genmotion.nn.vqvae_config import VQVAEConfig

__all__ = ["detect_flexvae_config", "flexvae_to_vqvae_keys", "load_official_flexvae", "read_flexvae"]

_LEVEL_RE = re.compile(r"^(encoder|decoder)\.conv_blocks\.(\d+)\.(res|attn|downsample|upsample)\.(.*)$")
_MID = {"0": "block_1", "1": "attn_1", "2": "block_2"}
_DROPPED = ("quantize.codebook_used",)
_GROUPS_FIX = "pass norm_groups matching the model the file came from (32 for the official FlexVAE)"


def read_flexvae(source: Source) -> dict[str, torch.Tensor]:
    """The tokenizer state dict of `FlexVAE.pth` (nested under ['model'], as LlamaGen saves it), a FlexVAR
    training checkpoint (['trainer']['vae_local']) or an already loaded mapping; another kind is a UsageError."""
    sd = read_state_dict(source, ("model",), ("trainer", "vae_local"))
    require_layout(sd, "flexvae")
    return sd


def _levels(sd: Mapping[str, torch.Tensor], side: str) -> int:
    return len({m.group(2) for k in sd if (m := _LEVEL_RE.match(k)) and m.group(1) == side})


def _rename(key: str, decoder_levels: int) -> str:
    m = _LEVEL_RE.match(key)
    if m:
        side, index, part, rest = m.groups()
        level = decoder_levels - 1 - int(index) if side == "decoder" else int(index)
        group = "down" if side == "encoder" else "up"
        return f"{side}.{group}.{level}.{'block' if part == 'res' else part}.{rest}"
    m = re.match(r"^(encoder|decoder)\.mid\.(\d+)\.(.*)$", key)
    if m and m.group(2) in _MID:
        return f"{m.group(1)}.mid.{_MID[m.group(2)]}.{m.group(3)}"
    return key


def flexvae_to_vqvae_keys(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`FlexVAE.pth` under genmotion's tokenizer names; separate q/k/v 1x1 convs are stacked into `qkv`."""
    levels = _levels(sd, "decoder")
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key in _DROPPED:
            continue
        name = _rename(key, levels)
        m = re.match(r"^(.*\.(?:attn\.\d+|attn_1))\.([qkv])\.(weight|bias)$", name)
        if m is None:
            out[name] = value
            continue
        prefix, which, kind = m.groups()
        if which != "q":
            continue  # stacked with q
        parts = [sd.get(key[: -len(f"{which}.{kind}")] + f"{p}.{kind}") for p in "qkv"]
        if any(p is None for p in parts):
            raise InputError(f"FlexVAE checkpoint key {key!r} has no matching q, k and v", fix="the file is corrupt")
        out[f"{prefix}.qkv.{kind}"] = torch.cat([p for p in parts if p is not None], dim=0)
    return out


def detect_flexvae_config(
    sd: Mapping[str, torch.Tensor], *, latent_size: int = 16, norm_groups: int = 32
) -> VQVAEConfig:
    """Channels, levels, res blocks, bottleneck, codes from FlexVAE keys (official names), one scale of
    `latent_size` (16: 256 px at 16x downsampling) and `norm_groups` (LlamaGen's 32): the weights record neither."""
    for key in ("encoder.conv_in.weight", "quant_conv.weight", "quantize.embedding.weight"):
        if key not in sd:
            raise InputError("this is not a FlexVAE (LlamaGen VQ) state dict", why=f"key {key!r} is missing")
    ch = sd["encoder.conv_in.weight"].shape[0]
    levels = _levels(sd, "encoder")
    res = len({m.group(1) for k in sd if (m := re.match(r"^encoder\.conv_blocks\.0\.res\.(\d+)\.", k))})
    mult = tuple(sd[f"encoder.conv_blocks.{i}.res.0.conv1.weight"].shape[0] // ch for i in range(levels))
    latent, bottleneck = sd["quant_conv.weight"].shape[:2]
    try:
        return VQVAEConfig(
            vocab_size=sd["quantize.embedding.weight"].shape[0],
            latent_channels=latent,
            channels=ch,
            channel_mult=mult,
            num_res_blocks=res,
            norm_groups=norm_groups,
            using_sa=f"encoder.conv_blocks.{levels - 1}.attn.0.q.weight" in sd,
            using_mid_sa="encoder.mid.1.q.weight" in sd,
            in_channels=sd["encoder.conv_in.weight"].shape[1],
            quant_conv_kernel=sd["quant_conv.weight"].shape[-1],
            bottleneck_channels=0 if bottleneck == latent else bottleneck,
            quant_resi=0.0,
            using_znorm=True,
            patch_nums=(latent_size,),
        )
    except ValueError as e:  # e.g. GroupNorm groups that do not divide a width
        raise InputError("the FlexVAE checkpoint does not make a tokenizer", why=str(e), fix=_GROUPS_FIX) from e


def load_official_flexvae(
    source: Source, *, latent_size: int = 16, norm_groups: int = 32, dtype: torch.dtype = torch.float32
) -> FlexVQVAE:
    """FlexVAR's tokenizer, every key mapped and checked against genmotion's `FlexVQVAE` (norm_groups: 32 as
    the official; smaller only for tiny test models)."""
    sd = read_flexvae(source)
    cfg = detect_flexvae_config(sd, latent_size=latent_size, norm_groups=norm_groups)
    mapped = flexvae_to_vqvae_keys(sd)
    with torch.device("meta"):
        reference = FlexVQVAE(cfg).state_dict()
    mapped.setdefault("quantize.ema_vocab_hit_SV", torch.zeros(reference["quantize.ema_vocab_hit_SV"].shape))
    match_state_dict(reference, mapped, part="vae")
    model = _materialise(FlexVQVAE, cfg, mapped, dtype)
    assert isinstance(model, FlexVQVAE)
    return model
