"""Caches, the heart of the suite: static KV caches, per-layer state, feature stores and cache policies."""

from genmotion.cache.chunk_reuse import ChunkReuse
from genmotion.cache.compose import parse_policy, policy_names
from genmotion.cache.head_aware import HeadAware
from genmotion.cache.kv_compress import ImportanceRedundancy, importance_redundancy_scores
from genmotion.cache.policies import Recompute, RollingWindow, SharedClean
from genmotion.cache.probe import AttentionCall, AttentionProbe, attention_probabilities
from genmotion.cache.profile import HeadProfile, load_head_profile, profile_heads, save_head_profile
from genmotion.kv.buffers import KVCache
from genmotion.kv.layered import FeatureCache, LayeredKVCache
from genmotion.kv.protocol import CachePolicy, FlowModel, FrameLayout, PolicyBase, PolicyStats

__all__ = [
    "AttentionCall",
    "AttentionProbe",
    "CachePolicy",
    "ChunkReuse",
    "FeatureCache",
    "FlowModel",
    "FrameLayout",
    "HeadAware",
    "HeadProfile",
    "ImportanceRedundancy",
    "KVCache",
    "LayeredKVCache",
    "PolicyBase",
    "PolicyStats",
    "Recompute",
    "RollingWindow",
    "SharedClean",
    "attention_probabilities",
    "importance_redundancy_scores",
    "load_head_profile",
    "parse_policy",
    "policy_names",
    "profile_heads",
    "save_head_profile",
]
