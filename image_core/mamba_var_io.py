"""Checkpoint directories of kind `m-var`: `config.yaml` (vae, var, classes, sampling) + `model.safetensors`
(`vae.*`: the VAR tokenizer, `var.*`: the M-VAR transformer), written by `genmotion train` (task m-var) or
`save_mvar_model` and read by `load_mvar_model`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from genmotion.checkpoint import load_weights, save_pretrained
from genmotion.image_core.config import VARSamplingConfig
from genmotion.image_core.convert import class_checkpoint_config, read_class_checkpoint
from genmotion.image_core.mamba_var import MambaVARImageConfig, MambaVARImageModel

__all__ = ["MVAR_KIND", "load_mvar_model", "mvar_checkpoint_config", "save_mvar_model"]

MVAR_KIND = "m-var"


def mvar_checkpoint_config(
    config: MambaVARImageConfig, class_names: Sequence[str] = (), sampling: VARSamplingConfig | None = None
) -> dict[str, object]:
    """The `config.yaml` mapping of an `m-var` checkpoint."""
    return class_checkpoint_config(MVAR_KIND, config, config.var.num_classes, class_names, sampling)


def save_mvar_model(
    model: MambaVARImageModel,
    directory: str | Path,
    *,
    card: str | None = None,
    dtype: torch.dtype | None = torch.bfloat16,
    class_names: Sequence[str] = (),
    sampling: VARSamplingConfig | None = None,
) -> Path:
    """Write `config.yaml` (kind m-var) + `model.safetensors` (bf16 by default) [+ `card.md`]."""
    return save_pretrained(directory, model, mvar_checkpoint_config(model.config, class_names, sampling), card, dtype)


def load_mvar_model(directory: str | Path, *, dtype: torch.dtype = torch.float32) -> MambaVARImageModel:
    """Read an `m-var` directory; every weight must be there (strict)."""
    config = read_class_checkpoint(directory, MVAR_KIND, MambaVARImageConfig, "an M-VAR", "pass an m-var checkpoint")
    model = MambaVARImageModel(config).to(dtype)  # built for real: its derived buffers are not in the file
    load_weights(model, directory, strict=True)
    return model.eval()
