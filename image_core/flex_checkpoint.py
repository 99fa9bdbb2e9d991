"""A FlexVAR checkpoint as one unit: the single-scale tokenizer (`vae`) + the FlexVAR transformer (`var`).

`config.yaml` holds `kind: flexvar`, the `vae` and `flexvar` architecture sections, and as metadata the class
names and default sampling settings; `model.safetensors` holds `vae.*` and `var.*` (the VAR checkpoint's
prefixes, so the tokenizer keys read the same as var-toy's).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from genmotion.checkpoint import load_weights, save_pretrained
from genmotion.image_core.config import VARSamplingConfig
from genmotion.image_core.convert import class_checkpoint_config, read_class_checkpoint, read_class_metadata
from genmotion.image_core.flex_config import FlexVARImageConfig
from genmotion.image_core.flex_model import FlexVAR
from genmotion.image_core.flex_tokenizer import FlexVQVAE

__all__ = [
    "FLEXVAR_KIND",
    "FlexVARImageModel",
    "flexvar_checkpoint_config",
    "load_flexvar_model",
    "read_flexvar_metadata",
    "save_flexvar_model",
]

FLEXVAR_KIND = "flexvar"


class FlexVARImageModel(nn.Module):
    """Holds `vae` (FlexVQVAE) and `var` (FlexVAR) built from one `FlexVARImageConfig`; no forward of its own."""

    def __init__(self, config: FlexVARImageConfig) -> None:
        super().__init__()
        self.config = config
        self.vae = FlexVQVAE(config.vae)
        self.var = FlexVAR(config.flexvar)


def flexvar_checkpoint_config(
    config: FlexVARImageConfig, class_names: Sequence[str] = (), sampling: VARSamplingConfig | None = None
) -> dict[str, object]:
    """The `config.yaml` mapping of a `flexvar` checkpoint."""
    return class_checkpoint_config(FLEXVAR_KIND, config, config.flexvar.num_classes, class_names, sampling)


def save_flexvar_model(
    model: FlexVARImageModel,
    directory: str | Path,
    *,
    card: str | None = None,
    dtype: torch.dtype | None = torch.bfloat16,
    class_names: Sequence[str] = (),
    sampling: VARSamplingConfig | None = None,
) -> Path:
    """Write `config.yaml` (kind: flexvar) + `model.safetensors` (`vae.*`, `var.*`; bf16 by default)."""
    return save_pretrained(
        directory, model, flexvar_checkpoint_config(model.config, class_names, sampling), card, dtype
    )


def read_flexvar_metadata(directory: str | Path) -> tuple[tuple[str, ...], VARSamplingConfig]:
    """Class names (empty when none are named) and default sampling settings of a `flexvar` directory."""
    return read_class_metadata(directory, VARSamplingConfig)


def load_flexvar_model(directory: str | Path, *, dtype: torch.dtype = torch.float32) -> FlexVARImageModel:
    """Read a directory written by `save_flexvar_model` or `genmotion train` (task flexvar), in eval mode."""
    config = read_class_checkpoint(
        directory, FLEXVAR_KIND, FlexVARImageConfig, "a FlexVAR", "pass a flexvar checkpoint"
    )
    with torch.device("meta"):
        model = FlexVARImageModel(config)
    model.to_empty(device="cpu")
    model = model.to(dtype)
    load_weights(model, directory, strict=True)
    return model.eval()
