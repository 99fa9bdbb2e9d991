"""genmotion.video: VideoAR text-to-video (next-frame x next-scale prediction over a causal multi-scale
tokenizer, sink + window frame cache, prompt schedules) and its training tasks.

Names are resolved lazily so `import genmotion.video` stays free of torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "SamplingConfig",
    "VideoAR",
    "VideoARConfig",
    "VideoARPipeline",
    "VideoARTransformer",
    "VideoARTransformerConfig",
    "VideoChunk",
    "VideoDataConfig",
    "VideoResult",
    "VideoTokenizer",
    "VideoTokenizerConfig",
    "stream_latents",
]

_WHERE = {
    "SamplingConfig": "config",
    "VideoAR": "model",
    "VideoARConfig": "config",
    "VideoARPipeline": "pipeline",
    "VideoARTransformer": "model",
    "VideoARTransformerConfig": "config",
    "VideoChunk": "pipeline",
    "VideoDataConfig": "config",
    "VideoResult": "pipeline",
    "VideoTokenizer": "tokenizer",
    "VideoTokenizerConfig": "config",
    "stream_latents": "sampler",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
