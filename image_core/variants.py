"""The VAR family as `genmotion image --model NAME` sees it: each name's embedded default checkpoint, and the
checkpoint kinds `genmotion image` runs. A new variant adds one entry to each (and its pipeline class to the
`genmotion.pipelines` entry points). Also the torch-free parsing of variant flags (`--refine`)."""

from __future__ import annotations

from genmotion.errors import UsageError

__all__ = ["IMAGE_KINDS", "VARIANTS", "parse_refine", "variant_checkpoint"]

VARIANTS: dict[str, str] = {  # --model name -> registry name of its embedded default
    "var": "var-toy",
    "flexvar": "flexvar-toy",
    "m-var": "m-var-toy",  # M-VAR: intra-scale attention + inter-scale selective scan (mamba_var.py)
    "flowar": "flowar-toy",
    "hmar": "hmar-toy",  # kind var with markov + mask_depth: scale-Markov, masked refinement
    "mvar": "mvar-toy",  # kind var with markov + neighbourhood_kernel: scale- and spatial-Markov
    "nfig": "nfig-toy",  # kind var with vae.resample spectral: scales are cosine frequency bands
}
IMAGE_KINDS: tuple[str, ...] = ("var", "flexvar", "m-var", "flowar", "flowar-official")


def variant_checkpoint(model: str) -> str:
    """The registry name `--model model` stands for; an unknown name is a UsageError listing the known ones."""
    if model not in VARIANTS:
        raise UsageError(f"unknown --model {model!r}", fix=f"use one of {', '.join(VARIANTS)} (or --ckpt DIR)")
    return VARIANTS[model]


def parse_refine(text: str) -> tuple[int, ...]:
    """`"1,1,2,3,1,1"` -> (1, 1, 2, 3, 1, 1): passes per scale, each >= 1 (1 = the one-shot pass only)."""
    try:
        steps = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(
            f"--refine must be comma-separated pass counts, one per scale, got {text!r}", fix="e.g. 1,1,2,3,1,1"
        ) from None
    if any(s < 1 for s in steps):
        raise UsageError(f"--refine counts must be >= 1 (1 = no refinement), got {text!r}", fix="e.g. 1,1,2,3,1,1")
    return steps
