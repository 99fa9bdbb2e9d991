"""The two AR loops every generator uses: discrete next-token/next-scale, and chunked causal flow."""

from genmotion.engine.discrete import (
    DecodeFn,
    TokenChunk,
    TokenLoopConfig,
    TokenModel,
    TokenSampler,
    decode_step,
    generate_tokens,
    prefill,
    token_stream,
)
from genmotion.engine.flow import FlowChunk, FlowLoopConfig, flow_generate, flow_stream

__all__ = [
    "DecodeFn",
    "FlowChunk",
    "FlowLoopConfig",
    "TokenChunk",
    "TokenLoopConfig",
    "TokenModel",
    "TokenSampler",
    "decode_step",
    "flow_generate",
    "flow_stream",
    "generate_tokens",
    "prefill",
    "token_stream",
]
