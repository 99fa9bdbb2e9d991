"""Cache policies, the heart of the suite, over the cache data of `genmotion.kv`.

One name per policy, the paper's, for the class, its file, its CLI name and its test:
`Recompute` (`recompute`, no cache: the exact reference), `SharedClean` (`shared`: Ca2-VDM's shared clean
cache), `RollingWindow` (`rolling`: sink + recent frames, as Self-Forcing/LongLive), `FlowCache` (flowcache.py,
`flowcache`: FlowCache's chunk reuse), `FlowCacheKV` (flowcache_kv.py, `flowcache-kv`: FlowCache's KV
compression), `ForcingKV` (forcing_kv.py, `forcing-kv`: Forcing-KV's head-aware pruning).
"""

from genmotion.cache.compose import parse_policy, policy_names
from genmotion.cache.flowcache import FlowCache
from genmotion.cache.flowcache_kv import FlowCacheKV, importance_redundancy_scores
from genmotion.cache.forcing_kv import ForcingKV
from genmotion.cache.policies import Recompute, RollingWindow, SharedClean
from genmotion.cache.probe import AttentionCall, AttentionProbe, ProbedAttention, attention_probabilities
from genmotion.cache.profile import HeadProfile, load_head_profile, profile_heads, save_head_profile
from genmotion.kv.buffers import KVCache
from genmotion.kv.layered import FeatureCache, LayeredKVCache
from genmotion.kv.protocol import CachePolicy, FlowModel, FrameLayout, PolicyBase, PolicyStats

__all__ = [
    "AttentionCall",
    "AttentionProbe",
    "CachePolicy",
    "FlowCache",
    "FeatureCache",
    "FlowModel",
    "FrameLayout",
    "ForcingKV",
    "HeadProfile",
    "FlowCacheKV",
    "KVCache",
    "LayeredKVCache",
    "PolicyBase",
    "PolicyStats",
    "ProbedAttention",
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
