"""Class-conditional VAR sampling: coarse-to-fine over scales through a KV cache (Tian et al., 2024).

Runs on the core discrete loop (`genmotion.engine.discrete`): the first scale is the prefill (start
tokens from the class embedding); every later scale is one decode step whose input is f_hat
area-downsampled to that scale. Guidance (`guidance_scale` s, 1 = off) follows VAR's linear ramp from 1 at the
coarsest scale to s at the last, logits = uncond + s_k (cond - uncond) (VAR's official cfg is s - 1); the batch
is doubled only when guidance is on. Randomness comes
only from the `generator` passed in.

Axis legend: B batch, l tokens of one scale, V vocabulary, Cv tokenizer latent channels,
H/W finest latent size, K number of scales.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from genmotion.cache import AttentionProbe, LayeredKVCache
from genmotion.engine.discrete import TokenLoopConfig, token_stream
from genmotion.errors import UsageError
from genmotion.image_core.kv_policies import FullKV, ScalePolicy
from genmotion.image_core.labels import check_labels, guided_labels
from genmotion.image_core.markov import stream_markov_scales
from genmotion.image_core.var_model import VAR
from genmotion.nn.quantizer import MultiScaleQuantizer
from genmotion.nn.vqvae import VQVAE
from genmotion.sampling.logits import LogitsProcessor, Sampler, gumbel_softmax, top_k_filter, top_p_filter

__all__ = ["ScaleOutput", "sample_images", "sample_indices", "stream_scales"]


@dataclass(frozen=True)
class ScaleOutput:
    """What one scale produced: its token indices (B, l) and the running f_hat (B, Cv, H, W)."""

    scale_index: int
    indices: torch.Tensor
    f_hat: torch.Tensor


@torch.no_grad()
def stream_scales(
    var: VAR,
    quantizer: MultiScaleQuantizer,
    labels_B: torch.Tensor,
    *,
    generator: torch.Generator,
    guidance_scale: float = 2.5,
    top_k: int = 0,
    top_p: float = 0.0,
    temperature: float = 1.0,
    more_smooth: bool = False,
    processors: Sequence[LogitsProcessor] = (),
    cache: LayeredKVCache | None = None,
    policy: ScalePolicy | None = None,
    refine: Sequence[int] = (),
) -> Iterator[ScaleOutput]:
    """Sample scale by scale, yielding each scale's tokens and f_hat as soon as they exist.

    labels_B: (B,) class ids (`var.num_classes` = unconditional). Temperature 0 is greedy.
    `more_smooth` feeds Gumbel-softmax mixtures of codes forward instead of the sampled codes (VAR's
    visualisation mode; tokens are still sampled and yielded). `processors` run on the guided logits
    (B, l, V) with the scale index as step (token forcing, watermark bias). `policy` (FullKV, ScaleKV,
    HACK) allocates the cache and evicts from it after each scale; otherwise `cache` may be passed to
    reuse buffers. Either holds 2B rows when guidance is on, B otherwise.
    A scale-Markov model (HMAR, MVAR: `var.config.markov`) is sampled without any cache
    (`genmotion.image_core.markov`); `refine` gives its passes per scale (HMAR's masked refinement).
    """
    check_labels(labels_B, var.num_classes)
    if var.config.markov:
        _check_markov_options(more_smooth, cache, policy)
        steps = stream_markov_scales(
            var, quantizer, labels_B, generator=generator, guidance_scale=guidance_scale, top_k=top_k, top_p=top_p,
            temperature=temperature, processors=processors, refine=refine,
        )  # fmt: skip
        yield from (ScaleOutput(si, idx, f_hat) for si, idx, f_hat in steps)
        return
    if refine and any(s > 1 for s in refine):
        raise UsageError("masked refinement (refine) needs an HMAR model", fix="drop refine, or load hmar-toy")
    B, K, Cv, H = labels_B.shape[0], len(var.patch_nums), var.Cvae, var.patch_nums[-1]
    labels, guided = guided_labels(labels_B, var.num_classes, guidance_scale)
    conditions = var.class_conditions(labels)
    cond_BD = conditions.cond_BD
    device = cond_BD.device
    cache = _cache_for(var, labels.shape[0], cache, policy, cond_BD)
    calls = _ScaleCalls(var, conditions, policy, guided, B)
    f_hat = torch.zeros(B, Cv, H, H, device=device)
    calls.next_map = f_hat

    loop = TokenLoopConfig(
        block_sizes=tuple(p * p for p in var.patch_nums), guidance_scale=guidance_scale, guidance="linear"
    )
    chunks = token_stream(
        calls.model,
        var.start_tokens(cond_BD),
        loop,
        cache=cache,
        sampler=Sampler(temperature=temperature, top_k=top_k, top_p=top_p),
        generator=generator,
        embed_next=calls.embed_next,
        processors=[*processors, calls.keep_logits],
    )
    for chunk in chunks:
        si, pn = chunk.index, var.patch_nums[chunk.index]
        if more_smooth:
            settings = (temperature, top_k, top_p)
            h_BlC = _smooth_codes(calls.final_logits, si, K, settings, quantizer.embedding.weight, generator)
        else:
            h_BlC = quantizer.embedding(chunk.tokens)
        h_BChw = h_BlC.transpose(1, 2).reshape(B, Cv, pn, pn)
        f_hat, calls.next_map = quantizer.next_autoregressive_input(si, f_hat, h_BChw)
        yield ScaleOutput(si, chunk.tokens, f_hat)


class _ScaleCalls:
    """The callbacks one VAR sampling run hands the core discrete loop: the model of each scale (with the
    policy's query probe and eviction), the next scale's input from the f_hat so far, and a logits tap."""

    def __init__(self, var: VAR, conditions: Any, policy: ScalePolicy | None, guided: bool, batch: int) -> None:
        self.var, self.conditions, self.policy, self.guided, self.batch = var, conditions, policy, guided, batch
        self.scale_of_call = iter(range(len(var.patch_nums)))
        self.next_map = torch.empty(0)  # f_hat accumulated so far, upsampled (set by the loop after each scale)
        self.final_logits = torch.empty(0)  # the last scale's guided, processed logits (B, l, V)

    def model(self, inputs: torch.Tensor, positions: torch.Tensor, *, cache: LayeredKVCache) -> torch.Tensor:
        si, policy = next(self.scale_of_call), self.policy
        rows = policy.observation_rows(si) if policy is not None else None
        if rows is None:
            logits = self.var.forward_scale(inputs, self.conditions, cache, positions_l=positions)  # B, l, V
            queries: list[torch.Tensor] = []
        else:  # the policy's observation queries, per layer (B, H, R, D), read from outside the model
            with AttentionProbe(self.var, rows=rows, snapshot=False) as probe:
                logits = self.var.forward_scale(inputs, self.conditions, cache, positions_l=positions)
            queries = [call.scaled_queries() for call in probe.calls]
        if policy is not None:
            policy.after_scale(cache, si, queries)
        return logits

    def embed_next(self, tokens: torch.Tensor, si: int) -> torch.Tensor:
        # Scale si's input is f_hat (accumulated over scales < si) area-downsampled, not the tokens.
        B, Cv = self.batch, self.var.Cvae
        x_BlC = self.var.scale_tokens(si, self.next_map.view(B, Cv, -1).transpose(1, 2))
        x_BlC = x_BlC.to(self.conditions.cond_BD.dtype)
        return x_BlC.repeat(2, 1, 1) if self.guided else x_BlC

    def keep_logits(self, logits_BlV: torch.Tensor, si: int) -> torch.Tensor:
        self.final_logits = logits_BlV
        return logits_BlV


def _check_markov_options(more_smooth: bool, cache: LayeredKVCache | None, policy: ScalePolicy | None) -> None:
    """A scale-Markov model keeps no cache: only the trivial full policy and no Gumbel smoothing are accepted."""
    if cache is not None or (policy is not None and not isinstance(policy, FullKV)):
        raise UsageError(
            "a scale-Markov model (HMAR, MVAR) samples without a KV cache, so a cache or cache policy cannot apply",
            fix="drop --kv (or pass kv='full')",
        )
    if more_smooth:
        raise UsageError("more_smooth is not available for scale-Markov models", fix="drop more_smooth")


def _cache_for(
    var: VAR, rows: int, cache: LayeredKVCache | None, policy: ScalePolicy | None, like: torch.Tensor
) -> LayeredKVCache:
    """The cache of one sampling run: the policy's allocation, the one passed in (checked), or a full one."""
    if policy is not None:
        if cache is not None:
            raise UsageError("pass a cache policy or a cache, not both", fix="the policy allocates its own cache")
        return policy.allocate(var, rows, dtype=like.dtype, device=like.device)
    cache = var.new_cache(rows, dtype=like.dtype, device=like.device) if cache is None else cache
    if cache[0].batch != rows:
        raise UsageError(f"cache holds {cache[0].batch} rows but this run needs {rows}")
    return cache


def _smooth_codes(
    logits_BlV: torch.Tensor, si: int, K: int, settings: tuple[float, int, float], codebook: torch.Tensor, g: Any
) -> torch.Tensor:
    """VAR's `more_smooth`: a Gumbel-softmax mixture of codes (B, l, Cv) over the filtered logits, with the
    official sampler's MaskGIT-style temperature decay over the scales."""
    temperature, top_k, top_p = settings
    ratio = si / (K - 1) if K > 1 else 0.0
    tau = max(0.27 * (1 - ratio * 0.95), 0.005)
    scaled = logits_BlV / temperature if temperature > 0 else logits_BlV
    kept = top_p_filter(top_k_filter(scaled, top_k), top_p)
    return gumbel_softmax(kept * (1 + ratio), g, tau) @ codebook


def sample_indices(
    var: VAR, quantizer: MultiScaleQuantizer, labels_B: torch.Tensor, *, generator: torch.Generator, **options: Any
) -> list[torch.Tensor]:
    """Per-scale token indices, each (B, pn*pn); `options` as in `stream_scales`."""
    return [step.indices for step in stream_scales(var, quantizer, labels_B, generator=generator, **options)]


@torch.no_grad()
def sample_images(
    var: VAR, vae: VQVAE, labels_B: torch.Tensor, *, generator: torch.Generator, **options: Any
) -> torch.Tensor:
    """Images (B, 3, H, W) in [0, 1]; `options` as in `stream_scales`."""
    steps = list(stream_scales(var, vae.quantize, labels_B, generator=generator, **options))
    f_hat = steps[-1].f_hat
    return vae.fhat_to_image(f_hat).add(1).mul(0.5)
