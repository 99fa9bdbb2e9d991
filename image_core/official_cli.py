"""`genmotion convert hmar`, `flexvar`, `m-var` and `flowar`: official HMAR / FlexVAR / M-VAR (OliverRensu/MVAR) /
FlowAR (OliverRen/FlowAR) files -> a checkpoint directory that `genmotion image --ckpt DIR` runs. Thin: flags
are checked before torch loads; a file of another kind is exit 2 (naming what it is), a broken one exit 3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from genmotion.cli.checks import check_file_input, check_folder_output, check_number

__all__ = ["convert_flexvar", "convert_flowar", "convert_hmar", "convert_m_var"]

_OUT = typer.Option(..., "--out", "-o", help="Checkpoint directory to write.")
_FORCE = typer.Option(False, "--force", help="Write over a folder genmotion did not write (moved aside).")
_BF16 = typer.Option(False, "--bf16", help="Store the weights as bf16 (half the size).")
_GROUPS = typer.Option(32, "--norm-groups", help="Tokenizer GroupNorm groups (32 for the official).")


def _convert(kind: str, var: Path, vae: Path, out: Path, force: bool, bf16: bool, norm_groups: int, hint: str) -> None:
    """Check the flags, then convert with `genmotion.image_core.official_<kind>.convert_official_<kind>`."""
    check_file_input(var, "--var")
    check_file_input(vae, "--vae")
    check_number("--norm-groups", norm_groups, low=1)
    check_folder_output(out, "checkpoint", force)
    import importlib

    import torch

    convert = getattr(importlib.import_module(f"genmotion.image_core.official_{kind}"), f"convert_official_{kind}")
    dtype = torch.bfloat16 if bf16 else None
    path = convert(var, vae, out, norm_groups=norm_groups, dtype=dtype, force=force)
    typer.echo(f"wrote {path} (use it with: genmotion image --ckpt {path} --class 207{hint})")


def convert_hmar(
    var: Path = typer.Option(..., "--var", help="Official hmar-d16.pth ... hmar-d30.pth (NVlabs/HMAR)."),
    vae: Path = typer.Option(..., "--vae", help="VAR's vae_ch160v4096z32.pth (HMAR's tokenizer)."),
    out: Path = _OUT,
    force: bool = _FORCE,
    bf16: bool = _BF16,
    norm_groups: int = _GROUPS,
) -> None:
    """Convert an official HMAR checkpoint (kind var: scale-Markov, masked refinement; HMAR's sampling defaults)."""
    _convert("hmar", var, vae, out, force, bf16, norm_groups, "")


def convert_flexvar(
    var: Path = typer.Option(..., "--var", help="Official FlexVARd16-epo179.pth, d20 or d24 (jiaosiyu1999/FlexVAR)."),
    vae: Path = typer.Option(..., "--vae", help="FlexVAR's tokenizer FlexVAE.pth."),
    out: Path = _OUT,
    force: bool = _FORCE,
    bf16: bool = _BF16,
    norm_groups: int = _GROUPS,
) -> None:
    """Convert the official FlexVAR checkpoints (kind flexvar: any steps and sizes; the official sampling defaults)."""
    _convert("flexvar", var, vae, out, force, bf16, norm_groups, " --steps 10")


def _check(files: dict[str, Path | None], norm_groups: int, out: Path, force: bool) -> None:
    """Flags of a convert command, before any model loads: input files, --norm-groups, the output folder."""
    for flag, path in files.items():
        check_file_input(path, flag)
    check_number("--norm-groups", norm_groups, low=1)
    check_folder_output(out, "checkpoint", force)


def _dtype(bf16: bool) -> Any:
    import torch

    return torch.bfloat16 if bf16 else None


def _wrote(path: Path) -> None:
    typer.echo(f"wrote {path} (use it with: genmotion image --ckpt {path} --class 207)")


def convert_m_var(
    var: Path = typer.Option(..., "--var", help="Official M-VAR transformer (e.g. d32.pth, or a training ckpt)."),
    vae: Path | None = typer.Option(None, "--vae", help="VAR's tokenizer vae_ch160v4096z32.pth (M-VAR uses it)."),
    out: Path = _OUT,
    force: bool = _FORCE,
    bf16: bool = _BF16,
    norm_groups: int = _GROUPS,
) -> None:
    """Convert an official M-VAR checkpoint (+ VAR's tokenizer) to a genmotion checkpoint directory (kind m-var)."""
    _check({"--var": var, "--vae": vae}, norm_groups, out, force)
    from genmotion.image_core.official_m_var import convert_official_mvar

    _wrote(convert_official_mvar(var, vae, out, norm_groups=norm_groups, dtype=_dtype(bf16), force=force))


def convert_flowar(
    flowar: Path = typer.Option(..., "--flowar", help="Official FlowAR-S/L/H .pth (OliverRen/FlowAR)."),
    vae: Path = typer.Option(..., "--vae", help="MAR's KL-16 autoencoder kl16.ckpt (FlowAR decodes with it)."),
    out: Path = _OUT,
    force: bool = _FORCE,
    bf16: bool = _BF16,
    norm_groups: int = _GROUPS,
) -> None:
    """Convert an official FlowAR checkpoint (+ MAR's KL-16) to a genmotion checkpoint directory (kind
    flowar-official), with the README's sampling settings for its size."""
    _check({"--flowar": flowar, "--vae": vae}, norm_groups, out, force)
    from genmotion.image_core.official_flowar import convert_official_flowar

    _wrote(convert_official_flowar(flowar, vae, out, norm_groups=norm_groups, dtype=_dtype(bf16), force=force))
