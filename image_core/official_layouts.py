"""Which official checkpoint a state dict is, told from its keys alone: the VAR family's transformers (VAR and
MVAR, HMAR, FlexVAR, M-VAR's Mamba one), FlowAR models and tokenizers (VAR's multi-scale VQVAE, FlexVAR's
LlamaGen-style FlexVAE, MAR's KL-16 autoencoder that FlowAR decodes with).

Each `genmotion convert` command takes one kind; a file of another known kind is a `UsageError` that names what
was found and the command that reads it (exit 2), so a swapped `--var`/`--vae` or the wrong command is caught
before any shape is compared.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from genmotion.checkpoint import load_foreign
from genmotion.errors import InputError, UsageError

__all__ = ["LAYOUTS", "distinct_storage", "official_layout", "read_state_dict", "require_layout"]

# layout -> (what it is, the command that converts it, the flag it goes to)
LAYOUTS: dict[str, tuple[str, str, str]] = {
    "var": ("an official VAR (or MVAR) transformer", "genmotion convert var", "--var"),
    "hmar": ("an official HMAR transformer", "genmotion convert hmar", "--var"),
    "flexvar": ("an official FlexVAR transformer", "genmotion convert flexvar", "--var"),
    "var-vae": ("the VAR tokenizer (vae_ch160v4096z32.pth)", "genmotion convert var or hmar", "--vae"),
    "flexvae": ("FlexVAR's tokenizer (FlexVAE.pth)", "genmotion convert flexvar", "--vae"),
    "m-var": ("an official M-VAR transformer (Mamba mixers)", "genmotion convert m-var", "--var"),
    "flowar": ("an official FlowAR model", "genmotion convert flowar", "--flowar"),
    "kl-autoencoder": ("MAR's KL-16 autoencoder (kl16.ckpt)", "genmotion convert flowar", "--vae"),
}
_MAMBA = re.compile(r"^blocks\.\d+\.mamba\.")


def official_layout(sd: Mapping[str, torch.Tensor]) -> str | None:
    """The layout name (a key of `LAYOUTS`) from marker keys, or None."""
    if any(_MAMBA.match(k) for k in sd):
        return "m-var"
    if "encoder_blocks.0.attn.qkv.weight" in sd or any(k.startswith("flownet.") for k in sd):
        return "flowar"
    if "ns_head.weight" in sd or any(k.startswith(("base_blocks.", "ns_blocks.")) for k in sd):
        return "hmar"
    if "word_embed.weight" in sd and "head.weight" in sd:
        pos = sd.get("pos_1LC")
        # FlexVAR's position table is one 2-D map (1, C, P, P) and it has no level embedding; VAR's is (1, L, C).
        if pos is not None and pos.ndim == 4 and "lvl_embed.weight" not in sd:
            return "flexvar"
        return "var"
    if "quantize.embedding.weight" in sd:
        if any(k.startswith("encoder.conv_blocks.") for k in sd):
            return "flexvae"
        if any(k.startswith("encoder.down.") for k in sd):
            return "var-vae"
    if "encoder.conv_in.weight" in sd and "quant_conv.weight" in sd and "encoder.mid.attn_1.q.weight" in sd:
        return "kl-autoencoder"  # LDM's KL-VAE: no codebook, separate q/k/v convolutions
    return None


def require_layout(sd: Mapping[str, torch.Tensor], wanted: str, *, only: tuple[str, ...] | None = None) -> None:
    """UsageError if `sd` is a known official layout other than `wanted`, or of no known layout. With `only`, just
    the layouts listed are refused (the caller's own key checks then name what else is wrong)."""
    found = official_layout(sd)
    if found == wanted or (only is not None and found not in only):
        return
    what, command, flag = LAYOUTS[wanted]
    if found is None:
        sample = ", ".join(sorted(sd)[:3]) or "no tensors"
        raise UsageError(
            f"this file is not {what}",
            why=f"its keys match no official VAR-family layout (first keys: {sample})",
            fix=f"pass {what} to {command} {flag}",
        )
    found_what, found_command, found_flag = LAYOUTS[found]
    raise UsageError(
        f"this file is {found_what}, not {what}",
        why=f"{command} {flag} reads {what}",
        fix=f"pass it to {found_command} {found_flag}, and {what} here",
    )


def read_state_dict(source: str | Path | Mapping[str, object], *nestings: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The tensors of a file or loaded mapping, unwrapped along the first of `nestings` that holds any (e.g.
    ("model",) for LlamaGen-style files, ("trainer", "var_wo_ddp") for training checkpoints); a file is read again
    only when the first nesting finds nothing. A file's `module.`/`_orig_mod.` prefixes are stripped."""
    for nesting in nestings or ((),):
        if isinstance(source, Mapping):
            obj: object = source
            for key in nesting:
                if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
                    obj = obj[key]
            assert isinstance(obj, Mapping)
            sd = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        else:
            sd = load_foreign(source, unwrap=nesting)
        if sd:
            return sd
    where = "the state dict" if isinstance(source, Mapping) else str(source)
    raise InputError(f"{where} holds no tensors", why=f"looked at the top level and under {list(nestings)}")


def distinct_storage(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`sd` with every tensor that shares memory with an earlier one copied: a file may store one tensor under
    several keys (e.g. identical buffers), which safetensors refuses to save once loaded into a model."""
    seen: set[int] = set()
    out = {}
    for key, value in sd.items():
        ptr = value.untyped_storage().data_ptr() if value.device.type != "meta" else id(value)
        out[key] = value.clone() if ptr in seen else value
        seen.add(ptr)
    return out
