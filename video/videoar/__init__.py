"""VideoAR, next-frame x next-scale text-to-video: `config` (transformer, checkpoint, sampling), `layout` (scale
tokens and the clip attention), `model` (transformer + tokenizer), `sampler` (frames drawn scale by scale through
the core token loop), `pipeline` (`VideoARPipeline`), `loss` and `train` (the `videoar` training task).
"""
