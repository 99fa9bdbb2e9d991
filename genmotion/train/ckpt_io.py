"""Lightning training checkpoints stored as safetensors.

Lightning's checkpoint is a tree of tensors and plain values (step counters, optimizer groups,
callback states). Tensors go into the safetensors body; the rest of the tree is JSON in the file's
metadata header, with dict key types and tuples kept, so `resume` restores it exactly and no pickle
is ever written or read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO

__all__ = ["SafetensorsCheckpointIO", "pack_tree", "unpack_tree"]

_TREE_KEY = "genmotion.tree"


def pack_tree(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON-ready copy of `obj` with each tensor moved into `tensors` and replaced by a reference."""
    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = obj.detach().cpu().contiguous()
        return {"__tensor__": name}
    if isinstance(obj, dict):
        return {"__dict__": [[pack_tree(k, tensors), pack_tree(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [pack_tree(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [pack_tree(v, tensors) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a safetensors checkpoint: {obj!r}")


def unpack_tree(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `pack_tree`."""
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {unpack_tree(k, tensors): unpack_tree(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(unpack_tree(v, tensors) for v in obj["__tuple__"])
    if isinstance(obj, list):
        return [unpack_tree(v, tensors) for v in obj]
    return obj


class SafetensorsCheckpointIO(CheckpointIO):
    """Lightning CheckpointIO plugin that writes and reads safetensors files atomically."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        from safetensors.torch import save_file

        tensors: dict[str, torch.Tensor] = {}
        tree = pack_tree(checkpoint, tensors)
        # Shared storage (e.g. tied weights) must be split for safetensors.
        tensors = {k: v.clone() for k, v in tensors.items()}
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        save_file(tensors, str(tmp), metadata={_TREE_KEY: json.dumps(tree)})
        os.replace(tmp, p)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if _TREE_KEY not in meta:
            raise ValueError(f"{path} is not a genmotion training checkpoint (no {_TREE_KEY} metadata)")
        device = str(map_location) if isinstance(map_location, (str, torch.device)) else "cpu"
        tensors = load_file(str(path), device=device)
        return unpack_tree(json.loads(meta[_TREE_KEY]), tensors)

    def remove_checkpoint(self, path: Any) -> None:
        p = Path(path)
        if p.is_file():
            p.unlink()
