"""Transformer parts: attention behind a backend seam, masks, RoPE, blocks and a tiny reference model."""

from genmotion.nn.attention import AttentionBackend, attend, attention_backends, register_attention_backend
from genmotion.nn.blocks import MLP, AdaLNBlock, Attention, PreNormBlock
from genmotion.nn.masks import (
    MaskArg,
    bidirectional_mask,
    block_causal_mask,
    block_diagonal_mask,
    can_use_is_causal,
    causal_mask,
    chunk_window_mask,
    ids_from_lengths,
    positional_causal_args,
    sdpa_mask_args,
)
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
    "MaskArg",
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
    "bidirectional_mask",
    "block_causal_mask",
    "block_diagonal_mask",
    "can_use_is_causal",
    "causal_mask",
    "chunk_window_mask",
    "grid_positions_2d",
    "grid_positions_3d",
    "ids_from_lengths",
    "multiscale_positions",
    "positional_causal_args",
    "register_attention_backend",
    "sdpa_mask_args",
    "timestep_embedding",
]
