"""genmotion.image_core: the VAR family (multi-scale VQ tokenizer, next-scale transformer, sampler, converters).

Names are resolved lazily so `import genmotion.image_core` stays free of torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "VAR",
    "VQVAE",
    "MultiScaleQuantizer",
    "ScaleOutput",
    "VARConfig",
    "VARImageConfig",
    "VARImageModel",
    "VQVAEConfig",
    "convert_official",
    "load_image_model",
    "load_official",
    "load_official_var",
    "load_official_vqvae",
    "official_var_config",
    "official_vqvae_config",
    "sample_images",
    "sample_indices",
    "save_image_model",
    "stream_scales",
]

_WHERE = {
    "VAR": "var_model",
    "VQVAE": "tokenizer",
    "MultiScaleQuantizer": "quantizer",
    "ScaleOutput": "sampler",
    "VARConfig": "config",
    "VARImageConfig": "config",
    "VARImageModel": "model",
    "VQVAEConfig": "config",
    "convert_official": "convert",
    "load_image_model": "convert",
    "load_official": "convert",
    "load_official_var": "convert",
    "load_official_vqvae": "convert",
    "official_var_config": "config",
    "official_vqvae_config": "config",
    "sample_images": "sampler",
    "sample_indices": "sampler",
    "save_image_model": "convert",
    "stream_scales": "sampler",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
