"""genmotion.video: the video family. Two text-to-video generators, each a package on the generator contract
(config, model, sampler, pipeline, train): `videoar/` (next-frame x next-scale prediction over the causal
multi-scale tokenizer, sink + window frame cache) and `ca2vdm/` (a causal flow model on the tokenizer's
continuous latents, with the core cache policies). What both use lives here: the video tokenizer and its
training task, clip data, the text condition, the shared streaming pipeline base, evaluation (adherence,
quality, the toy-world FVD), export, the `genmotion video` command and `genmotion bench video`.

Names are resolved lazily so `import genmotion.video` stays free of torch.
"""

from __future__ import annotations

from genmotion.lazy import lazy_attributes

__all__ = [
    "Ca2VDM",
    "Ca2VDMConfig",
    "Ca2VDMPipeline",
    "SamplingConfig",
    "VideoAR",
    "VideoARConfig",
    "VideoARPipeline",
    "VideoARTransformer",
    "VideoARTransformerConfig",
    "VideoChunk",
    "VideoDataConfig",
    "VideoResult",
    "VideoStreamer",
    "VideoTokenizer",
    "VideoTokenizerConfig",
    "stream_latents",
]

_WHERE = {
    "Ca2VDM": "ca2vdm.model",
    "Ca2VDMConfig": "ca2vdm.config",
    "Ca2VDMPipeline": "ca2vdm.pipeline",
    "SamplingConfig": "videoar.config",
    "VideoAR": "videoar.model",
    "VideoARConfig": "videoar.config",
    "VideoARPipeline": "videoar.pipeline",
    "VideoARTransformer": "videoar.model",
    "VideoARTransformerConfig": "videoar.config",
    "VideoChunk": "streamer",
    "VideoDataConfig": "config",
    "VideoResult": "streamer",
    "VideoStreamer": "streamer",
    "VideoTokenizer": "tokenizer",
    "VideoTokenizerConfig": "config",
    "stream_latents": "videoar.sampler",
}


__getattr__ = lazy_attributes(__name__, _WHERE)
