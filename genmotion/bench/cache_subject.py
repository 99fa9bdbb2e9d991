"""What `genmotion bench cache` measures: a causal flow model with its frame layout and its cache policies.

`tiny_subject` is the built-in seeded `TinyFlowModel` fitted to toy waves (generated after a clean prefix
chunk, unbounded policies); `pipeline_subject` is a trained causal flow video checkpoint loaded through the
registry (e.g. `ca2vdm-toy`), used only through its generic pipeline methods (`frame_layout`,
`conditioned_flow`, `flow_model`, `policy`, `decode_latents`, `head_profile`): it generates from frame 0,
its policies default to its trained context window, and its latents are decoded to frames.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from genmotion.bench.cache_tiny import fit_flow_model, policy_flops, seeded_tiny_flow_model, travelling_waves
from genmotion.cache import CachePolicy, FrameLayout, HeadProfile, load_head_profile, parse_policy, profile_heads
from genmotion.cache.compose import kv_part
from genmotion.errors import UsageError
from genmotion.pipeline import FlowPolicyHost, HoldsModel

if TYPE_CHECKING:
    from genmotion.bench.cache import CacheBenchConfig

__all__ = ["Subject", "describe_policy", "pipeline_subject", "tiny_subject"]


@dataclass
class Subject(HoldsModel):
    """One model under test. `policy(name, **params)` makes a fresh policy with this model's defaults;
    `embed` is what FlowCache compares between steps; `decode` maps (1, T, N, C) latents to uint8 frames
    (None: no decoder); `formula_flops(chunks, shared)` counts FLOPs in closed form (None: count them by
    running under `FlopCounterMode`)."""

    model: Any  # a genmotion.cache.FlowModel (nn.Module)
    layout: FrameLayout
    policy: Callable[..., CachePolicy]
    profile: HeadProfile
    embed: Callable[[torch.Tensor], torch.Tensor] | None
    setting: dict[str, Any] = field(default_factory=dict)
    prefix: torch.Tensor | None = None
    decode: Callable[[torch.Tensor], np.ndarray] | None = None
    formula_flops: Callable[[int, bool], int] | None = None


def describe_policy(policy: CachePolicy) -> str:
    """e.g. `FlowCache(thresh=0.01, warmup=5, context=SharedClean(window=4))`: the settings that matter."""
    keys = (
        "sink",
        "window",
        "recent",
        "segment_window",
        "segments",
        "keep_ratio",
        "budget",
        "thresh",
        "warmup",
        "order",
        "rule",
        "queries",
    )
    simple = (int, float, str, type(None))
    parts = [f"{k}={getattr(policy, k)}" for k in keys if hasattr(policy, k) and isinstance(getattr(policy, k), simple)]
    inner = getattr(policy, "context", None)
    if isinstance(inner, CachePolicy):
        parts.append(f"context={describe_policy(inner)}")
    return f"{type(policy).__name__}({', '.join(parts)})"


# ---- the built-in tiny model ------------------------------------------------------------------------
def _tiny_policy(cfg: CacheBenchConfig, profile: HeadProfile, name: str, **params: Any) -> CachePolicy:
    """Unbounded context (the tiny bench's setting), with a rolling ring of 1 + `rolling_window` frames and
    FlowCache-KV's budget of the same tokens."""
    W, N = cfg.rolling_window, cfg.tokens_per_frame
    every: dict[str, dict[str, Any]] = {
        "rolling": {"sink": 1, "window": W},
        "flowcache-kv": {"budget": (1 + W) * N},
        "forcing-kv": {"profile": profile},
    }
    defaults = every.get(kv_part(name), {})
    return parse_policy(name, **{**defaults, **params})


def tiny_subject(cfg: CacheBenchConfig) -> Subject:
    """Build the seeded TinyFlowModel, fit it, profile its heads and draw the clean prefix chunk."""
    layout, gen = cfg.layout, torch.Generator().manual_seed(cfg.seed)
    model = seeded_tiny_flow_model(cfg.model_config, cfg.seed, spatial_std=cfg.spatial_std)
    start = time.perf_counter()
    losses = fit_flow_model(model, layout, cfg, gen) if cfg.fit_steps else []
    fit = {
        "steps": cfg.fit_steps,
        "seconds": time.perf_counter() - start,
        "loss_first_20": losses[:20],
        "loss_last_20": losses[-20:],
    }
    model.eval()
    prefix = travelling_waves(1, cfg.frames_per_chunk, layout, gen)
    profile = profile_heads(model, layout, generator=gen, num_chunks=cfg.profile_chunks, model_name="bench-tiny")
    flops = lambda chunks, shared: policy_flops(
        cfg.model_config, layout, chunks=chunks, steps=cfg.num_steps, prefix_frames=cfg.frames_per_chunk, shared=shared
    )
    setting = {
        "model": "TinyFlowModel from a seed, fitted by flow matching to toy travelling-wave latents",
        "parameters": sum(p.numel() for p in model.parameters()),
        "fit": fit,
        "inputs": f"a clean prefix chunk of toy latents + noise from seed {cfg.seed}; batch 1",
        "flowcache_embedding": "the model's input projection proj_in(x) (FlowCache compares x_embedder(x))",
        "flowcache_kv_budget": "(1 + rolling_window) * tokens_per_frame = the rolling ring's slots",
        "flop_count": "closed form: matmul FLOPs of the visible (query, key) pairs (flow_model_flops)",
        "decoding": "none: the tiny model has no decoder, so frame metrics and end-to-end seconds are absent",
    }
    return Subject(
        model,
        layout,
        partial(_tiny_policy, cfg, profile),
        profile,
        model.proj_in,
        setting,
        prefix=prefix,
        formula_flops=flops,
    )


# ---- a trained checkpoint --------------------------------------------------------------------------
def _input_embedding(flow: Any) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The flow model's input projection (`proj_in`, on it or on the model it wraps), else None (raw latents)."""
    for owner in (flow, getattr(flow, "model", None)):
        embed = getattr(owner, "proj_in", None)
        if isinstance(embed, torch.nn.Module):
            return embed
    return None


def pipeline_subject(cfg: CacheBenchConfig) -> Subject:
    """Load `cfg.model` (registry name or checkpoint directory) and bind its flow model to `cfg.prompt`."""
    from genmotion.registry import load_pipeline

    pipe = load_pipeline(cfg.model)
    if not isinstance(pipe, FlowPolicyHost) or not isinstance(pipe.frame_layout, FrameLayout):
        raise UsageError(
            f"model {cfg.model!r} ({type(pipe).__name__}) is not a chunked causal flow video pipeline",
            why="the cache bench needs a pipeline that hosts the core's flow cache policies (FlowPolicyHost)",
            fix="bench a causal flow checkpoint (e.g. ca2vdm-toy), or use --model tiny",
        )
    layout: FrameLayout = pipe.frame_layout
    flow = pipe.conditioned_flow(cfg.prompt, guidance_scale=cfg.guidance_scale)
    shipped = getattr(pipe, "head_profile", None)
    if shipped:
        profile, source, extra = load_head_profile(shipped), f"shipped with the checkpoint ({shipped})", {}
    else:
        gen = torch.Generator().manual_seed(cfg.seed)
        profile = profile_heads(
            pipe.flow_model, layout, generator=gen, num_chunks=cfg.profile_chunks, model_name=cfg.model
        )
        source = f"profiled here on the unconditional flow model, {cfg.profile_chunks} chunks"
        extra = {"profile": profile}

    def policy(name: str, **params: Any) -> CachePolicy:
        return pipe.policy(name, **({**extra, **params} if kv_part(name) == "forcing-kv" else params))

    embed = _input_embedding(flow)
    names = ("recompute", "shared", "rolling", "flowcache-kv", "forcing-kv")
    setting = {
        "model": f"{cfg.model} ({type(pipe).__name__}, its trained weights)",
        "parameters": sum(p.numel() for p in flow.parameters()),
        "layout": {
            "tokens_per_frame": layout.tokens_per_frame,
            "channels": layout.channels,
            "frames_per_chunk": layout.frames_per_chunk,
        },
        "inputs": f"prompt {cfg.prompt!r}, guidance {cfg.guidance_scale}, noise from seed {cfg.seed}; "
        "generated from frame 0 (no clean prefix); batch 1",
        "policies": {n: describe_policy(policy(n)) for n in names},
        "head_profile_source": source,
        "flowcache_embedding": "the model's input projection proj_in(x)" if embed is not None else "raw latents",
        "flop_count": "torch.utils.flop_counter.FlopCounterMode over one denoising run of each policy "
        "(matmuls and attention as run: masked pairs count, being computed)",
        "decoding": "pipe.decode_latents of the whole video; frame PSNR/SSIM vs the exact output's frames",
    }
    return Subject(flow, layout, policy, profile, embed, setting, decode=pipe.decode_latents)
