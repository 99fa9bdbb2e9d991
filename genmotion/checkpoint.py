"""Checkpoint directories: `config.yaml` + `model.safetensors` (+ `card.md`), and foreign `.pth` reading.

Everything genmotion writes is safetensors. A foreign checkpoint is read with
`torch.load(weights_only=True)` only, so no pickle from the internet can run code here.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
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
    "check_weights",
    "is_checkpoint_dir",
    "load_foreign",
    "load_weights",
    "read_checkpoint_config",
    "save_pretrained",
]

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "card.md"
CHECKPOINT_OUTPUT = "checkpoint"  # the output kind recorded in a checkpoint folder's marker


def is_checkpoint_dir(path: str | Path) -> bool:
    p = Path(path)
    return (p / CONFIG_NAME).is_file() and (p / WEIGHTS_NAME).is_file()


def save_pretrained(
    directory: str | Path,
    model: nn.Module,
    config: Mapping[str, Any],
    card: str | None = None,
    dtype: torch.dtype | None = None,
    *,
    force: bool = False,
    files: Mapping[str, Path | Callable[[Path], object]] | None = None,
) -> Path:
    """Write `config` (plain YAML data, with a `kind` key naming the pipeline) and the model's weights, and
    `files` beside them ({name in the checkpoint: a file to copy, or a writer called with the path}).

    The directory is assembled under a temporary name beside it and swapped in under the output rule of
    `genmotion.io.atomic` (kind "checkpoint"): it replaces an absent folder, an empty one or a previous
    checkpoint; any other folder is refused (`force` moves it aside). A crash never leaves a half-written
    checkpoint. Files are 0666 and folders 0777 minus the umask (0644 / 0755 usually), so a shared models
    folder is readable by others. `dtype` (e.g. torch.bfloat16) casts floating tensors.
    """
    import yaml
    from safetensors.torch import save_file

    from genmotion.io.atomic import atomic_folder

    if "kind" not in config:
        raise ValueError("checkpoint config needs a 'kind' key naming its pipeline")
    out = Path(directory)
    with atomic_folder(out, CHECKPOINT_OUTPUT, force) as tmp:
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
        for name, source in (files or {}).items():
            if callable(source):
                source(tmp / name)
            else:
                shutil.copyfile(source, tmp / name)
        _share_modes(tmp)
    return out


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _share_modes(folder: Path) -> None:
    """Folder 0777 and files 0666 minus the umask (what a plain mkdir / open would give)."""
    mask = _umask()
    folder.chmod(0o777 & ~mask)
    for p in folder.rglob("*"):
        p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)


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


def check_weights(directory: str | Path) -> None:
    """Raise `InputError` (exit 3) when a checkpoint's weights file is not readable safetensors (truncated,
    empty, random bytes); reads the header and checks the data length, no tensor is built."""
    path = Path(directory) / WEIGHTS_NAME
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except Exception as e:  # safetensors raises several types for truncated / random files
        raise InputError(f"cannot read {path}", why=f"{type(e).__name__}: {e}", fix="re-export the checkpoint") from e


def load_weights(
    model: nn.Module,
    directory: str | Path,
    strict: bool = True,
    dtype: torch.dtype | None = None,
    *,
    prefix: str = "",
    skip: tuple[str, ...] = (),
) -> nn.Module:
    """Load `model.safetensors` into `model` (cast to the model's dtype, or `dtype`), key for key.

    The one way a run starts from another checkpoint's weights, whole or in part:
    `prefix` (e.g. "tokenizer."): only the part of a larger checkpoint under it, the prefix stripped (a whole
    model's weights into one of its parts, e.g. a `videoar` checkpoint's tokenizer or transformer);
    `skip` (key prefixes, e.g. ("tokenizer.",)): keys left as the model has them, neither read nor required
    (a flow transformer taken from a checkpoint whose autoencoder is another)."""
    from safetensors.torch import load_file

    path = Path(directory) / WEIGHTS_NAME
    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises several types for truncated, empty or foreign files
        raise InputError(f"cannot read {path}", why=f"{type(e).__name__}: {e}", fix="re-export the checkpoint") from e
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if skip:
        state = {k: v for k, v in state.items() if not k.startswith(skip)}
    ref = model.state_dict()
    for k, v in state.items():
        if k in ref and v.is_floating_point():
            state[k] = v.to(dtype or ref[k].dtype)
    shapes = [
        f"{k} {tuple(v.shape)} vs {tuple(ref[k].shape)}"
        for k, v in state.items()
        if k in ref and v.shape != ref[k].shape
    ]
    if shapes:
        raise InputError(
            f"weights in {directory} do not match the model",
            why=f"shape of {shapes[0]}" + (f" (and {len(shapes) - 1} more)" if len(shapes) > 1 else ""),
            fix="the config.yaml and model.safetensors must come from the same run",
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(skip)] if skip else missing
    if strict and (missing or unexpected):
        raise InputError(
            f"weights in {directory} do not match the model",
            why=f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}",
            fix="the config.yaml and model.safetensors must come from the same run",
        )
    return model


def _load_failure(e: Exception) -> str:
    """torch.load's refusal without its advice to load with weights_only=False: only what is in the file."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if m:
        return f"it holds the Python object {m.group(1)}, which a weights-only load does not run"
    advice = ("weights_only", "can still be loaded", "trusted source", "documentation")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not any(a in ln for a in advice)]
    return f"{type(e).__name__}: {lines[0] if lines else 'not a torch checkpoint'}"[:200]


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
                why=_load_failure(e),
                fix="genmotion only loads tensors and plain containers (it never runs code from a pickle); "
                "re-save the file as a plain state dict of tensors",
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
