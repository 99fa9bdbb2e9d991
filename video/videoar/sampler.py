"""The VideoAR sampling loop: frame after frame (causal, through the frame cache), scale after scale inside
a frame (VAR), with classifier-free guidance, an explicit generator and a prompt that may change at frame
boundaries. Yields each finished frame's latent as soon as it exists; decoding to pixels is the caller's.

Per frame: reset the scale cache; run scale 0 (the text/start token) and each finer scale against
the cache, sampling its tokens; then one forward over the frame's clean latent appends it to the ring
cache (sink + window frames), so every frame costs the same however long the video runs. A model with a
`keyframe` transformer draws frame 0 with it (its own scale cache, its own condition of the same text) and
commits that frame to the main transformer's cache, which draws every later frame. A model with a layout prior
draws frame 0's coarsest scales with it first (`layout_prior`), jointly instead of token by token independently.
Axes: B videos (2B rows under guidance: conditional first), l tokens of a scale, Cv latent channels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import torch

from genmotion.engine.discrete import TokenLoopConfig, token_stream
from genmotion.kv.layered import LayeredKVCache
from genmotion.nn.quantizer import MultiScaleQuantizer
from genmotion.sampling.logits import LogitsProcessor, force_tokens, sample_logits
from genmotion.video.videoar.config import SamplingConfig
from genmotion.video.videoar.layout import ScaleLayout
from genmotion.video.videoar.layout_prior import LayoutPrior
from genmotion.video.videoar.model import Modulation, VideoAR, VideoARCache, VideoARTransformer

__all__ = ["FrameLatent", "stream_latents"]

ConditionFn = Callable[[int], torch.Tensor]
"""`frame index -> prompt embedding (B, E)` (the pipeline maps its prompt schedule through the text encoder;
each transformer makes its own condition of it)."""


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
    base: torch.Tensor | None,
    cache: VideoARCache,
    settings: SamplingConfig,
    generator: torch.Generator | None,
    processors: Sequence[LogitsProcessor],
    *,
    transformer: VideoARTransformer | None = None,
    commit: bool = True,
    score: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """All scales of one frame on the core discrete loop, then the frame's commit to the frame cache; returns
    (f_hat (B, Cv, h, w), per-scale tokens (B, p^2)). Scale 0 (the start token) is the loop's prefill, every
    finer scale a decode step whose input is built from the sampled codes by `embed_next`. `base` (B, Cv, h, w):
    the previous frame's f_hat under temporal residual coding (the codes add to it), else None. `transformer`:
    the one that draws (default `model.transformer`; the keyframe's for frame 0). `commit`: append the finished
    frame to the main transformer's frame cache (False for a frame drawn by another transformer or in a cache of
    its own, which the caller commits). `score`: a list that receives the
    frame's score per video (B,), the sum over its tokens of log p(token | text) - log p(token | no text) (the
    text's pointwise mutual information with the frame, from the same two passes guidance makes; without
    guidance log p(token | text) alone)."""
    tr, q = transformer or model.transformer, model.tokenizer.quantize
    layout = tr.layout
    guided = settings.guided
    rows = cond_BW.shape[0]
    B = rows // 2 if guided else rows
    dtype, device = cond_BW.dtype, cond_BW.device
    P, Cv = layout.patch_nums[-1], q.Cvae
    fhat = torch.zeros(B, Cv, P, P, device=device) if base is None else base.float().clone()
    cache.scales.reset()
    mod = tr.modulation(cond_BW)  # AdaLN vectors of every block, once per frame
    prev = tr.previous_tokens(prev_tokens, B, device)  # (B, N_s): the last frame's codes per scale token
    prev = torch.cat([prev, prev]) if guided else prev
    scale_of_call = iter(range(layout.num_scales))
    state = cache  # the whole VideoAR cache (frame ring + this frame's scales); the loop sees only cache.scales
    last: list[torch.Tensor] = []  # the logits of the scale being drawn, (rows, l, V), when scoring
    total = torch.zeros(B, device=device)

    def scale_logits(inputs: torch.Tensor, positions: torch.Tensor, *, cache: LayeredKVCache) -> torch.Tensor:
        # the loop's positions count tokens; VideoAR places them (frame, row, column) and reads both caches
        h = tr.step(inputs, mod, layout.scale_positions(frame, next(scale_of_call)).to(device), state, clean=False)
        assert h is not None
        logits = tr.logits(h, mod).float()  # (rows, l, V)
        if score is not None:
            last[:] = [logits]
        return logits

    def add_score(idx_BL: torch.Tensor) -> None:
        nonlocal total
        logp = last[0].log_softmax(-1).gather(-1, torch.cat([idx_BL, idx_BL]) if guided else idx_BL).sum((1, 2))
        total = total + (logp[:B] - logp[B:] if guided else logp)

    def embed_next(idx_BL: torch.Tensor, si: int) -> torch.Tensor:
        nonlocal fhat
        if score is not None:
            add_score(idx_BL[:B].unsqueeze(-1))
        fhat, nxt = _add_scale(q, fhat, idx_BL[:B], si - 1, layout.patch_nums[si - 1])
        inp = nxt.flatten(2).transpose(1, 2).to(dtype)  # (B, p'^2, Cv)
        return tr.embed_scales(cond_BW, torch.cat([inp, inp]) if guided else inp, prev[:, layout.scale_slice(si)], si)

    scale = settings.guidance_scale
    if base is not None and settings.residual_guidance is not None:
        scale = settings.residual_guidance
    if frame == 0:
        scale = settings.frame0_guidance
    loop = TokenLoopConfig(
        block_sizes=layout.scale_sizes, guidance_scale=scale, guidance=settings.guidance_schedule, paired=guided
    )
    if settings.copy_threshold > 0 and prev_tokens is not None and base is None:
        processors = (*processors, _copy_prior(prev[:B], layout, settings.copy_threshold, settings.copy_scales))
    start = tr.embed_scales(cond_BW, cond_BW.new_zeros(rows, 0, Cv), prev[:, :1])  # the start token (rows, 1, W)
    draw = partial(sample_logits, temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p)
    chunks = token_stream(
        scale_logits, start, loop, cache=cache.scales, sampler=draw, generator=generator, embed_next=embed_next,
        processors=processors,
    )  # fmt: skip
    tokens = [chunk.tokens for chunk in chunks]
    fhat, _ = _add_scale(q, fhat, tokens[-1], layout.num_scales - 1, layout.patch_nums[-1])
    if score is not None:
        add_score(tokens[-1].unsqueeze(-1))
        score.append(total)
    if commit:
        _commit(model, frame, fhat.to(dtype), mod, cache, guided)
    return fhat, tokens


def _layout_codes(
    prior: LayoutPrior, text_BE: torch.Tensor, settings: SamplingConfig, generator: torch.Generator | None
) -> LogitsProcessor:
    """Draw frame 0's coarsest scales with the layout prior (jointly, token by token) and return a logits
    processor that forces them at those scales; the frame's transformer draws the finer scales given them."""
    scale = settings.frame0_guidance if settings.layout_guidance is None else settings.layout_guidance
    codes = prior.sample(text_BE, guidance_scale=scale, temperature=settings.temperature, generator=generator)

    def process(logits_BLV: torch.Tensor, step: int) -> torch.Tensor:
        if step >= len(codes):
            return logits_BLV
        return force_tokens(logits_BLV, codes[step], torch.ones_like(codes[step], dtype=torch.bool))

    return process


def _copy_prior(prev_BN: torch.Tensor, layout: ScaleLayout, threshold: float, scales: int = 0) -> LogitsProcessor:
    """A logits processor that keeps the previous frame's code at each token's place (`prev_BN` (B, N_s): that
    frame's codes per scale token) wherever the (guided) distribution gives it probability >= `threshold`, and
    leaves every other token's logits as they are: what the model is fairly sure did not change is not re-drawn
    (sampling would re-draw a steady background every frame), a change the model is sure of still wins.
    `scales` > 0: only at the `scales` coarsest scales (step < scales); the finer ones are sampled as drawn."""

    def process(logits_BLV: torch.Tensor, step: int) -> torch.Tensor:
        if scales and step >= scales:
            return logits_BLV
        prev_Bl = prev_BN[:, layout.scale_slice(step)]
        keep_Bl = logits_BLV.softmax(-1).gather(-1, prev_Bl.unsqueeze(-1)).squeeze(-1) >= threshold
        return force_tokens(logits_BLV, prev_Bl, keep_Bl)

    return process


def _add_scale(
    q: MultiScaleQuantizer, fhat: torch.Tensor, idx_BL: torch.Tensor, si: int, pn: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale `si`'s sampled codes (B, pn^2) added to f_hat; returns (f_hat, the next scale's input map)."""
    B, Cv = idx_BL.shape[0], fhat.shape[1]
    code = q.embedding(idx_BL).transpose(1, 2).reshape(B, Cv, pn, pn)
    return q.next_autoregressive_input(si, fhat, code)


def _commit(model: VideoAR, frame: int, fhat: torch.Tensor, mod: Modulation, cache: VideoARCache, guided: bool) -> None:
    """Append the finished frame's clean tokens to the frame cache (the ring of sink + window frames)."""
    tr = model.transformer
    clean = tr.embed_clean(fhat.flatten(2).transpose(1, 2))
    positions = tr.layout.clean_positions(frame).to(fhat.device)
    tr.step(torch.cat([clean, clean]) if guided else clean, mod, positions, cache, clean=True)


def stream_latents(
    model: VideoAR,
    text: ConditionFn,
    num_frames: int | None,
    settings: SamplingConfig,
    *,
    batch: int = 1,
    generator: torch.Generator | None = None,
    processors: Sequence[LogitsProcessor] = (),
) -> Iterator[FrameLatent]:
    """Yield frames 0, 1, ... (forever when num_frames is None). `text(f)` gives the (B, E) prompt embedding
    of frame f's prompt; under guidance the null condition is stacked below each condition."""
    p = next(model.parameters())
    guided = settings.guided
    tr = model.transformer
    cache = tr.new_cache(2 * batch if guided else batch, dtype=p.dtype, device=p.device)
    temporal = model.tokenizer.config.temporal_residual
    frame, tokens = 0, None
    fhat: torch.Tensor | None = None
    own_first = settings.first_frame_candidates > 1 or model.keyframe is not None or model.layout_prior is not None
    while num_frames is None or frame < num_frames:
        rows = _rows(tr, text(frame).to(p.dtype), guided)
        if frame == 0 and own_first:
            new_fhat, tokens = _first_frame(model, text(0).to(p.dtype), settings, generator, processors)
            _commit(model, 0, new_fhat.to(p.dtype), tr.modulation(rows), cache, guided)
        else:
            base = fhat if temporal else None
            new_fhat, tokens = _sample_frame(model, frame, rows, tokens, base, cache, settings, generator, processors)
        yield FrameLatent(
            index=frame,
            fhat=new_fhat,
            tokens=tuple(tokens),
            cache_bytes=cache.nbytes(),
            cache_valid_bytes=cache.valid_nbytes(),
        )
        fhat, frame = new_fhat, frame + 1


def _rows(tr: VideoARTransformer, text_BE: torch.Tensor, guided: bool) -> torch.Tensor:
    """The transformer's condition of the prompt (B, W), with the null condition below it under guidance."""
    cond = tr.condition(text_BE)
    return torch.cat([cond, tr.null_condition(cond.shape[0]).to(cond.dtype)]) if guided else cond


def _first_frame(
    model: VideoAR,
    text_BE: torch.Tensor,
    settings: SamplingConfig,
    generator: torch.Generator | None,
    processors: Sequence[LogitsProcessor],
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Frame 0, drawn by the keyframe transformer where the model has one (else the main one), through a cache
    of its own (nothing precedes frame 0; the caller commits it). With `first_frame_candidates` N > 1, N frames
    per video are drawn and the one whose tokens the text explains best is kept (`_sample_frame`'s score)."""
    tr = model.keyframe or model.transformer
    n = settings.first_frame_candidates
    text = text_BE.repeat_interleave(n, dim=0)  # (N B, E)
    rows = _rows(tr, text, settings.guided)  # (N B or 2 N B, W)
    if model.layout_prior is not None:
        processors = (*processors, _layout_codes(model.layout_prior, text, settings, generator))
    own = tr.new_cache(rows.shape[0], dtype=rows.dtype, device=rows.device)
    score: list[torch.Tensor] | None = [] if n > 1 else None
    fhat, tokens = _sample_frame(
        model, 0, rows, None, None, own, settings, generator, processors, transformer=tr, commit=False, score=score
    )
    if score is None:
        return fhat, tokens
    best = score[0].view(-1, n).argmax(1) + torch.arange(0, fhat.shape[0], n, device=fhat.device)  # (B,)
    return fhat[best], [t[best] for t in tokens]
