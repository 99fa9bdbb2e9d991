"""Class-conditional M-VAR sampling: coarse-to-fine over the scales, each block's scan state carried from one
scale to the next (`mamba_var.ScanCache`), so no scale re-runs the ones before it and there is no KV cache.

The rest is VAR's sampler (`sampler.py`): the next scale's input is f_hat area-downsampled, guidance follows
VAR's linear ramp (`guidance_scale` s, 1 = off; the batch is doubled only when it is on), logits processors run
on the guided logits with the scale index as step, and randomness comes only from the `generator` passed in.

Axis legend: B batch, l tokens of one scale, V vocabulary, Cv tokenizer latent channels, H finest latent side.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from genmotion.image_core.labels import guided_labels
from genmotion.image_core.mamba_var import MambaVAR, ScanCache
from genmotion.image_core.sampler import ScaleOutput, _smooth_codes
from genmotion.nn.quantizer import MultiScaleQuantizer
from genmotion.nn.vqvae import VQVAE
from genmotion.sampling.guidance import guidance_schedule, guide
from genmotion.sampling.logits import LogitsProcessor, Sampler, apply_processors

__all__ = ["sample_mvar_images", "sample_mvar_indices", "stream_mvar_scales"]


@torch.no_grad()
def stream_mvar_scales(
    model: MambaVAR,
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
    cache: ScanCache | None = None,
) -> Iterator[ScaleOutput]:
    """Sample scale by scale, yielding each scale's tokens (B, l) and f_hat (B, Cv, H, H) as soon as they exist.

    labels_B: (B,) class ids (`model.num_classes` = unconditional). Temperature 0 is greedy. `more_smooth` feeds
    Gumbel-softmax mixtures of codes forward (VAR's visualisation mode). `cache`: fresh scan states to fill
    (2B rows with guidance on, B otherwise); by default made here.
    """
    B, K, Cv, H = labels_B.shape[0], len(model.patch_nums), model.Cvae, model.patch_nums[-1]
    labels, guided = guided_labels(labels_B, model.num_classes, guidance_scale)
    conditions = model.class_conditions(labels)
    like = conditions.cond_BD
    if cache is None:
        cache = model.new_cache(labels.shape[0], dtype=like.dtype, device=like.device)
    elif cache.length != 0 or cache.batch != labels.shape[0]:
        raise ValueError(f"need fresh scan states for {labels.shape[0]} rows, got {cache.batch} rows at {cache.length}")
    schedule = guidance_schedule("linear", guidance_scale)
    sampler = Sampler(temperature=temperature, top_k=top_k, top_p=top_p)
    f_hat = torch.zeros(B, Cv, H, H, device=like.device)
    x_BlC = model.start_tokens(like)
    for si, pn in enumerate(model.patch_nums):
        logits = model.forward_scale(x_BlC, conditions, cache)  # B or 2B, l, V
        if guided:
            logits = guide(logits[:B], logits[B:], schedule(si, K))
        logits = apply_processors(logits, si, processors)
        tokens = sampler(logits, generator)  # B, l
        if more_smooth:
            h_BlC = _smooth_codes(logits, si, K, (temperature, top_k, top_p), quantizer.embedding.weight, generator)
        else:
            h_BlC = quantizer.embedding(tokens)
        f_hat, next_map = quantizer.next_autoregressive_input(si, f_hat, h_BlC.transpose(1, 2).reshape(B, Cv, pn, pn))
        yield ScaleOutput(si, tokens, f_hat)
        if si + 1 < K:
            x_BlC = model.scale_tokens(si + 1, next_map.view(B, Cv, -1).transpose(1, 2)).to(like.dtype)
            x_BlC = x_BlC.repeat(2, 1, 1) if guided else x_BlC


def sample_mvar_indices(
    model: MambaVAR, quantizer: MultiScaleQuantizer, labels_B: torch.Tensor, *, generator: torch.Generator,
    **options: Any,
) -> list[torch.Tensor]:  # fmt: skip
    """Per-scale token indices, each (B, pn*pn); `options` as in `stream_mvar_scales`."""
    return [s.indices for s in stream_mvar_scales(model, quantizer, labels_B, generator=generator, **options)]


@torch.no_grad()
def sample_mvar_images(
    model: MambaVAR, vae: VQVAE, labels_B: torch.Tensor, *, generator: torch.Generator, **options: Any
) -> torch.Tensor:
    """Images (B, 3, H, W) in [0, 1]; `options` as in `stream_mvar_scales`."""
    steps = list(stream_mvar_scales(model, vae.quantize, labels_B, generator=generator, **options))
    return vae.fhat_to_image(steps[-1].f_hat).add(1).mul(0.5)
