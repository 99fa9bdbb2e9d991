"""genmotion.world: VFMF, forecasting vision-foundation-model features of the toy world's 3-D scenes and
decoding them to segmentation, depth, surface normals and RGB (Boduljak et al., arXiv 2512.11225).

Importing this package loads nothing heavy; the names below are imported on first use."""

from __future__ import annotations

from typing import Any

__all__ = ["VFMFConfig", "VFMFModel", "VFMFPipeline", "WorldChunk", "WorldResult"]

_WHERE = {
    "VFMFConfig": "genmotion.world.config",
    "VFMFModel": "genmotion.world.model",
    "VFMFPipeline": "genmotion.world.pipeline",
    "WorldChunk": "genmotion.world.pipeline",
    "WorldResult": "genmotion.world.pipeline",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'genmotion.world' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)
