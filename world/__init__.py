"""genmotion.world: VFMF, forecasting vision-foundation-model features of the toy world's 3-D scenes and
decoding them to segmentation, depth, surface normals and RGB (Boduljak et al., arXiv 2512.11225).

Importing this package loads nothing heavy; the names below are imported on first use."""

from __future__ import annotations

from genmotion.lazy import lazy_attributes

__all__ = ["VFMFConfig", "VFMFModel", "VFMFPipeline", "WorldChunk", "WorldResult"]

_WHERE = {
    "VFMFConfig": "config",
    "VFMFModel": "model",
    "VFMFPipeline": "pipeline",
    "WorldChunk": "pipeline",
    "WorldResult": "pipeline",
}


__getattr__ = lazy_attributes(__name__, _WHERE)
