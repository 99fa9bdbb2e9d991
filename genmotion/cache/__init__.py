"""Caches, the heart of the suite: static KV caches, per-layer state, feature stores and cache policies."""

from genmotion.cache.kv import KVCache
from genmotion.cache.policies import Recompute, RollingWindow, SharedClean
from genmotion.cache.policy import CachePolicy, FlowModel, FrameLayout, PolicyBase, PolicyStats
from genmotion.cache.state import FeatureCache, LayeredKVCache

__all__ = [
    "CachePolicy",
    "FeatureCache",
    "FlowModel",
    "FrameLayout",
    "KVCache",
    "LayeredKVCache",
    "PolicyBase",
    "PolicyStats",
    "Recompute",
    "RollingWindow",
    "SharedClean",
]
