"""genmotion: autoregressive generation for video and 3D, on one causal engine with first-class caches.

Importing this package loads nothing heavy; `genmotion.load(...)` imports what the model needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "load"]

if TYPE_CHECKING:
    import torch


def load(name_or_path: str, device: str | torch.device | None = None, dtype: Any = None) -> Any:
    """Load a pipeline by registry name (an embedded default) or from a checkpoint directory.

    Returns the pipeline object of the model's generator (it has `stream()` and `generate()`).
    """
    from genmotion.registry import load_pipeline

    return load_pipeline(name_or_path, device=device, dtype=dtype)
