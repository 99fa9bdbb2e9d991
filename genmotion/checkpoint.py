"""Checkpoint directories: `config.yaml` + `model.safetensors` (+ `card.md`), and foreign `.pth` reading.

Everything genmotion writes is safetensors. A foreign checkpoint is read with
`torch.load(weights_only=True)` only, so no pickle from the internet can run code here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genmotion.errors import InputError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "CARD_NAME",
    "is_checkpoint_dir",
    "load_foreign",
    "load_weights",
    "read_checkpoint_config",
    "save_pretrained",
]

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "card.md"


def is_checkpoint_dir(path: str | Path) -> bool:
    p = Path(path)
    return (p / CONFIG_NAME).is_file() and (p / WEIGHTS_NAME).is_file()


def save_pretrained(
    directory: str | Path,
    model: nn.Module,
    config: Mapping[str, Any],
    card: str | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write `config` (plain YAML data, with a `kind` key naming the pipeline) and the model's weights.

    The directory is assembled under a temporary name beside it and renamed into place, so a crash
    never leaves a half-written checkpoint. `dtype` (e.g. torch.bfloat16) casts floating tensors.
    """
    import yaml
    from safetensors.torch import save_file

    if "kind" not in config:
        raise ValueError("checkpoint config needs a 'kind' key naming its pipeline")
    out = Path(directory)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    state = {}
    for k, v in model.state_dict().items():
        t = v.detach()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        state[k] = t.contiguous().cpu()
    save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "kind": str(config["kind"])})
    (tmp / CONFIG_NAME).write_text(yaml.safe_dump(dict(config), sort_keys=False))
    if card is not None:
        (tmp / CARD_NAME).write_text(card)
    if out.exists():
        import shutil

        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)
    return out


def read_checkpoint_config(directory: str | Path) -> dict[str, Any]:
    """The `config.yaml` of a checkpoint directory, checked to name its `kind`."""
    from genmotion.config import load_yaml

    d = Path(directory)
    if not is_checkpoint_dir(d):
        raise InputError(
            f"{d} is not a genmotion checkpoint directory",
            why=f"it needs both {CONFIG_NAME} and {WEIGHTS_NAME}",
            fix="pass a directory written by `genmotion train` or `genmotion convert`, or a registry name "
            "from `genmotion models`",
        )
    cfg = load_yaml(d / CONFIG_NAME)
    if "kind" not in cfg:
        raise InputError(f"{d / CONFIG_NAME} has no 'kind' key", fix="add kind: <pipeline name> (e.g. videoar)")
    return cfg


def load_weights(
    model: nn.Module, directory: str | Path, strict: bool = True, dtype: torch.dtype | None = None
) -> nn.Module:
    """Load `model.safetensors` into `model` (cast to the model's dtype, or `dtype`), key for key."""
    from safetensors.torch import load_file

    state = load_file(str(Path(directory) / WEIGHTS_NAME))
    ref = model.state_dict()
    for k, v in state.items():
        if k in ref and v.is_floating_point():
            state[k] = v.to(dtype or ref[k].dtype)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if strict and (missing or unexpected):
        raise InputError(
            f"weights in {directory} do not match the model",
            why=f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}",
            fix="the config.yaml and model.safetensors must come from the same run",
        )
    return model


def load_foreign(path: str | Path, unwrap: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Read a foreign `.pth`/`.pt`/`.ckpt`/`.safetensors` state dict safely.

    `.pth` files go through `torch.load(weights_only=True)`; `unwrap` lists nested keys to descend
    (e.g. ("trainer", "var_wo_ddp")) when present. `module.` and `_orig_mod.` prefixes are stripped.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise InputError(f"checkpoint file {p} does not exist", fix="check the path")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        obj: Any = load_file(str(p))
    else:
        try:
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as e:
            raise InputError(
                f"cannot read {p} as a weights-only checkpoint",
                why=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                fix="genmotion only loads tensors and plain containers; re-save the file as a plain state dict",
            ) from e
    for key in unwrap:
        if isinstance(obj, Mapping) and key in obj:
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise InputError(f"{p} does not hold a state dict", why=f"found {type(obj).__name__}")
    out: dict[str, torch.Tensor] = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            continue
        name = str(k)
        for prefix in ("module.", "_orig_mod."):
            while name.startswith(prefix):
                name = name[len(prefix) :]
        out[name] = v
    return out
