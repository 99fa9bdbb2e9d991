"""The tiny flow model the cache-policy and flow-engine tests share (fixed weights, global RNG untouched)."""

import torch

from genmotion.kv import FrameLayout
from genmotion.nn import TinyFlowModel, TinyFlowModelConfig, TinyTransformerConfig


def tiny_layout(tokens_per_frame: int = 2) -> FrameLayout:
    return FrameLayout(tokens_per_frame=tokens_per_frame, channels=3, frames_per_chunk=2)


def tiny_flow_model(tokens_per_frame: int = 2, seed: int = 0) -> TinyFlowModel:
    """A 2-layer, width-16 flow model over 3 channels; the same weights at every call with the same seed."""
    config = TinyFlowModelConfig(
        channels=3, tokens_per_frame=tokens_per_frame, transformer=TinyTransformerConfig(dim=16, heads=2, cond_dim=8)
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return TinyFlowModel(config).eval()
