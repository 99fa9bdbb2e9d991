"""Cache data, below everything that reads or writes it: static KV buffers, per-layer state, feature stores,
and the cache-policy protocol the engines drive. Policies themselves live in `genmotion.cache`."""

from genmotion.kv.buffers import KVCache
from genmotion.kv.layered import FeatureCache, KVCacheParts, LayeredKVCache
from genmotion.kv.protocol import CachePolicy, FlowModel, FrameLayout, PolicyBase, PolicyStats

__all__ = [
    "CachePolicy",
    "FeatureCache",
    "FlowModel",
    "FrameLayout",
    "KVCache",
    "KVCacheParts",
    "LayeredKVCache",
    "PolicyBase",
    "PolicyStats",
]
