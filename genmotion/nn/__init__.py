"""Transformer parts: attention behind a backend seam, masks, RoPE, blocks and a tiny reference model."""

from genmotion.nn import masks
from genmotion.nn.attention import AttentionBackend, attend, attention_backends, register_attention_backend
from genmotion.nn.blocks import MLP, AdaLNBlock, Attention, PreNormBlock
from genmotion.nn.masks import *  # noqa: F403 (every mask helper: masks.__all__, added to ours below)
from genmotion.nn.rope import Rotary, apply_rope, grid_positions_2d, grid_positions_3d, multiscale_positions
from genmotion.nn.tiny import (
    TinyFlowModel,
    TinyFlowModelConfig,
    TinyTokenModel,
    TinyTransformer,
    TinyTransformerConfig,
    timestep_embedding,
)

__all__ = [
    "MLP",
    "AdaLNBlock",
    "Attention",
    "AttentionBackend",
    "PreNormBlock",
    "Rotary",
    "TinyFlowModel",
    "TinyFlowModelConfig",
    "TinyTokenModel",
    "TinyTransformer",
    "TinyTransformerConfig",
    "apply_rope",
    "attend",
    "attention_backends",
    "grid_positions_2d",
    "grid_positions_3d",
    "multiscale_positions",
    "register_attention_backend",
    "timestep_embedding",
]
__all__ += masks.__all__  # every mask helper, as the masks module lists them
