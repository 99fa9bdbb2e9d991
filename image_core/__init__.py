"""genmotion.image_core: the VAR family (next-scale transformer, sampler, converters, KV policies ScaleKV/HACK,
in/out-painting, training tasks, the `var` pipeline; FlexVAR and its `flexvar` pipeline). Its multi-scale VQ
tokenizer is shared with VideoAR and lives in the core: `genmotion.nn.vqvae` (`VQVAE`), `genmotion.nn.quantizer`
(`MultiScaleQuantizer`) and `genmotion.nn.vqvae_config` (`VQVAEConfig`).

Names are resolved lazily so `import genmotion.image_core` stays free of torch.
"""

from __future__ import annotations

from genmotion.lazy import lazy_attributes

__all__ = [
    "FlexVAR",
    "FlexVARConfig",
    "FlexVARPipeline",
    "FlexVQVAE",
    "FullKV",
    "HACK",
    "HACKConfig",
    "ImageDataConfig",
    "ImageResult",
    "ScaleChunk",
    "ScaleKV",
    "ScaleKVConfig",
    "ScaleOutput",
    "TOY_CLASSES",
    "TTSResult",
    "TokenForcing",
    "VAR",
    "VARConfig",
    "VARImageConfig",
    "VARImageModel",
    "VARPipeline",
    "VARSamplingConfig",
    "convert_official",
    "inpaint_forcing",
    "load_head_profile",
    "load_image_model",
    "load_official",
    "load_official_var",
    "load_official_vqvae",
    "official_var_config",
    "official_vqvae_config",
    "profile_var_heads",
    "tts_generate",
    "sample_images",
    "sample_indices",
    "save_image_model",
    "stream_scales",
    "write_head_profile",
]

_WHERE = {
    "FlexVAR": "flex_model",
    "FlexVARConfig": "flex_config",
    "FlexVARPipeline": "flex_pipeline",
    "FlexVQVAE": "flex_tokenizer",
    "TTSResult": "tts",
    "tts_generate": "tts",
    "FullKV": "kv_policies",
    "HACK": "kv_policies",
    "HACKConfig": "kv_policies",
    "ImageDataConfig": "data",
    "ImageResult": "pipeline",
    "ScaleChunk": "pipeline",
    "ScaleKV": "kv_policies",
    "ScaleKVConfig": "kv_policies",
    "ScaleOutput": "sampler",
    "TOY_CLASSES": "data",
    "TokenForcing": "editing",
    "VAR": "var_model",
    "VARConfig": "config",
    "VARImageConfig": "config",
    "VARImageModel": "model",
    "VARPipeline": "pipeline",
    "VARSamplingConfig": "config",
    "convert_official": "convert",
    "inpaint_forcing": "editing",
    "load_head_profile": "profile",
    "load_image_model": "convert",
    "load_official": "convert",
    "load_official_var": "convert",
    "load_official_vqvae": "convert",
    "official_var_config": "config",
    "official_vqvae_config": "config",
    "profile_var_heads": "profile",
    "sample_images": "sampler",
    "sample_indices": "sampler",
    "save_image_model": "convert",
    "stream_scales": "sampler",
    "write_head_profile": "profile",
}


__getattr__ = lazy_attributes(__name__, _WHERE)
