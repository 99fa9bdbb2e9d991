"""The VideoAR sampling loop: frame after frame (causal, through the frame cache), scale after scale inside
a frame (VAR), with classifier-free guidance, an explicit generator and a prompt that may change at frame
boundaries. Yields each finished frame's latent as soon as it exists; decoding to pixels is the caller's.

Per frame: reset the scale cache; run scale 0 (the text/start token) and each finer scale against
the cache, sampling its tokens; then one forward over the frame's clean latent appends it to the ring
cache (sink + window frames), so every frame costs the same however long the video runs.
Axes: B videos (2B rows under guidance: conditional first), l tokens of a scale, Cv latent channels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from genmotion.sampling.guidance import guidance_schedule, guide
from genmotion.sampling.logits import LogitsProcessor, apply_processors, sample_logits
from genmotion.video.config import SamplingConfig
from genmotion.video.model import VideoAR, VideoARCache

__all__ = ["FrameLatent", "stream_latents"]

ConditionFn = Callable[[int], torch.Tensor]
"""`frame index -> condition (B, W)` (the pipeline maps its prompt schedule through the text encoder)."""


@dataclass(frozen=True)
class FrameLatent:
    """One finished frame: index, f_hat (B, Cv, h, w), per-scale token maps (B, p^2), and the KV cache's bytes
    after it (allocated, and held by valid entries)."""

    index: int
    fhat: torch.Tensor
    tokens: tuple[torch.Tensor, ...]
    cache_bytes: int
    cache_valid_bytes: int


@torch.no_grad()
def _sample_frame(
    model: VideoAR,
    frame: int,
    cond_BW: torch.Tensor,
    prev_tokens: list[torch.Tensor] | None,
    cache: VideoARCache,
    settings: SamplingConfig,
    generator: torch.Generator | None,
    processors: Sequence[LogitsProcessor],
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """All scales of one frame; returns (f_hat (B, Cv, h, w), per-scale tokens (B, p^2))."""
    tr, q = model.transformer, model.tokenizer.quantize
    layout = tr.layout
    guided = settings.guidance_scale != 1.0
    rows = cond_BW.shape[0]
    B = rows // 2 if guided else rows
    schedule = guidance_schedule(settings.guidance_schedule, settings.guidance_scale)
    dtype = cond_BW.dtype
    P, Cv = layout.patch_nums[-1], q.Cvae
    fhat = torch.zeros(B, Cv, P, P, device=cond_BW.device)
    cache.scales.reset()
    mod = tr.modulation(cond_BW)  # AdaLN vectors of every block, once per frame
    prev = tr.previous_tokens(prev_tokens, B, cond_BW.device)  # (B, N_s): the last frame's codes per scale token
    prev = torch.cat([prev, prev]) if guided else prev
    x = tr.embed_scales(cond_BW, cond_BW.new_zeros(rows, 0, Cv), prev[:, :1])  # the start token
    tokens = []
    for si, pn in enumerate(layout.patch_nums):
        pos = layout.scale_positions(frame, si).to(cond_BW.device)
        h = tr.step(x, mod, pos, cache, clean=False)
        assert h is not None
        logits = tr.logits(h, mod)
        if guided:  # uncond + s (cond - uncond), s ramped per scale if "linear"
            cond_l, uncond_l = logits.float().chunk(2, dim=0)
            logits = guide(cond_l, uncond_l, schedule(si, layout.num_scales))
        logits = apply_processors(logits.float(), si, processors)
        idx = sample_logits(logits, generator, settings.temperature, settings.top_k, settings.top_p)  # (B, l)
        tokens.append(idx)
        code = q.embedding(idx).transpose(1, 2).reshape(B, Cv, pn, pn)
        fhat, nxt = q.next_autoregressive_input(si, fhat, code)
        if si + 1 < layout.num_scales:
            inp = nxt.flatten(2).transpose(1, 2).to(dtype)  # (B, p'^2, Cv)
            sl = layout.scale_slice(si + 1)
            x = tr.embed_scales(cond_BW, torch.cat([inp, inp]) if guided else inp, prev[:, sl], first_scale=si + 1)
    clean = tr.embed_clean(fhat.flatten(2).transpose(1, 2).to(dtype))
    tr.step(
        torch.cat([clean, clean]) if guided else clean,
        mod,
        layout.clean_positions(frame).to(cond_BW.device),
        cache,
        clean=True,
    )
    return fhat, tokens


def stream_latents(
    model: VideoAR,
    condition: ConditionFn,
    num_frames: int | None,
    settings: SamplingConfig,
    *,
    batch: int = 1,
    generator: torch.Generator | None = None,
    processors: Sequence[LogitsProcessor] = (),
) -> Iterator[FrameLatent]:
    """Yield frames 0, 1, ... (forever when num_frames is None). `condition(f)` gives the (B, W) condition
    of frame f's prompt; under guidance the null condition is stacked below it."""
    p = next(model.parameters())
    guided = settings.guidance_scale != 1.0
    cache = model.transformer.new_cache(2 * batch if guided else batch, dtype=p.dtype, device=p.device)
    null = model.transformer.null_condition(batch).to(p.dtype)
    frame, tokens = 0, None
    while num_frames is None or frame < num_frames:
        cond = condition(frame).to(p.dtype)
        rows = torch.cat([cond, null]) if guided else cond
        fhat, tokens = _sample_frame(model, frame, rows, tokens, cache, settings, generator, processors)
        yield FrameLatent(
            index=frame,
            fhat=fhat,
            tokens=tuple(tokens),
            cache_bytes=cache.nbytes(),
            cache_valid_bytes=cache.valid_nbytes(),
        )
        frame += 1
