"""Ca2-VDM-style causal flow video: `config`, `model` (the flow transformer over the video tokenizer's continuous
latents), `sampler` (`GuidedFlow`, the model as the core flow loops' `FlowModel`), `pipeline` (`Ca2VDMPipeline`,
with the core cache policies) and `train` (the `ca2vdm` training task: exactly what the cached inference computes).
"""
