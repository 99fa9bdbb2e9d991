"""The VAR family as `genmotion image --model NAME` sees it: each name's embedded default checkpoint, and the
checkpoint kinds `genmotion image` runs. A new variant adds one entry to each (and its pipeline class to the
`genmotion.pipelines` entry points)."""

from __future__ import annotations

from genmotion.errors import UsageError

__all__ = ["IMAGE_KINDS", "VARIANTS", "variant_checkpoint"]

VARIANTS: dict[str, str] = {  # --model name -> registry name of its embedded default
    "var": "var-toy",
    "flexvar": "flexvar-toy",
    "m-var": "m-var-toy",  # M-VAR: intra-scale attention + inter-scale selective scan (mamba_var.py)
    "flowar": "flowar-toy",
}
IMAGE_KINDS: tuple[str, ...] = ("var", "flexvar", "m-var", "flowar")


def variant_checkpoint(model: str) -> str:
    """The registry name `--model model` stands for; an unknown name is a UsageError listing the known ones."""
    if model not in VARIANTS:
        raise UsageError(f"unknown --model {model!r}", fix=f"use one of {', '.join(VARIANTS)} (or --ckpt DIR)")
    return VARIANTS[model]
