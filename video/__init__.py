"""genmotion.video: VideoAR text-to-video (next-frame x next-scale prediction over a causal multi-scale
tokenizer, sink + window frame cache, prompt schedules) and its training tasks.

Names are resolved lazily so `import genmotion.video` stays free of torch.
"""

from __future__ import annotations

from genmotion.lazy import lazy_attributes

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


__getattr__ = lazy_attributes(__name__, _WHERE)
