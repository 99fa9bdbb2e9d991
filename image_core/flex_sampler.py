"""FlexVAR sampling: coarse to fine over any schedule of scale sizes through a KV cache (Jiao et al., 2025).

Each scale predicts the whole image at its size; the next scale's input is this scale's code map
bicubic-upsampled, and only the last scale is decoded. It runs on the core discrete loop's pieces (`prefill`,
`decode_step`, guidance, logits processors, `Sampler`) with FlexVAR's two rules: guidance ramps over the first
`min(K - 1, 9)` steps (full guidance after, and at every size larger than training saw), and scales whose size
training never drew are sampled greedily (top-k 1). Randomness comes only from the `generator` passed in.

Axis legend: B batch, l = s*s tokens of one scale of side s, V vocabulary, Cv latent channels, K scales.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genmotion.engine.discrete import decode_step, prefill
from genmotion.errors import UsageError
from genmotion.image_core.flex_config import FlexVARConfig
from genmotion.image_core.flex_model import FlexVAR
from genmotion.image_core.flex_tokenizer import NormalizedQuantizer
from genmotion.image_core.labels import guided_labels
from genmotion.kv.layered import LayeredKVCache
from genmotion.sampling.guidance import guide
from genmotion.sampling.logits import LogitsProcessor, Sampler, apply_processors

__all__ = [
    "MAX_UPSCALE",
    "FlexScaleOutput",
    "check_schedule",
    "flex_guidance_scales",
    "parse_schedule",
    "resolve_schedule",
    "schedule_for_steps",
    "stream_flex_scales",
]

MAX_UPSCALE = 4  # the largest final side sampled is this many times the trained latent side


@dataclass(frozen=True)
class FlexScaleOutput:
    """What one scale produced: its side, token ids (B, side*side) and unit code map (B, Cv, side, side)."""

    scale_index: int
    side: int
    indices: torch.Tensor
    code_map: torch.Tensor


def parse_schedule(text: str) -> tuple[int, ...]:
    """ "1,2,4,8" -> (1, 2, 4, 8); anything else is a UsageError naming the form."""
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(
            f"--schedule must be comma-separated scale sides, got {text!r}", fix="e.g. --schedule 1,2,4,8"
        ) from None
    return sizes


def check_schedule(sizes: Sequence[int], config: FlexVARConfig, latent_side: int) -> tuple[int, ...]:
    """A schedule the model can take for a final latent of `latent_side`, or a UsageError saying why not."""
    sizes = tuple(sizes)
    trained = config.latent_size
    if not sizes or any(s < 1 for s in sizes) or any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)):
        raise UsageError(
            f"scale schedule {list(sizes)} must be positive sides that increase strictly",
            fix="e.g. 1,2,4,8 (coarse to fine)",
        )
    if sizes[0] != 1:
        raise UsageError(
            f"scale schedule {list(sizes)} starts at {sizes[0]}",
            why="the first scale is the 1x1 map predicted from the class token",
            fix="start it at 1",
        )
    if sizes[-1] != latent_side:
        raise UsageError(
            f"scale schedule {list(sizes)} ends at {sizes[-1]} but the image needs a "
            f"{latent_side}x{latent_side} latent",
            why="only the last scale is decoded, so it must be the full latent",
            fix=f"end the schedule at {latent_side}, or change the image size",
        )
    if latent_side > MAX_UPSCALE * trained:
        raise UsageError(
            f"a {latent_side}x{latent_side} latent is over {MAX_UPSCALE}x the {trained}x{trained} "
            "this model was trained at",
            fix=f"ask for at most {MAX_UPSCALE * trained} latent cells a side",
        )
    return sizes


def schedule_for_steps(num_steps: int, latent_side: int) -> tuple[int, ...]:
    """`num_steps` strictly increasing sides from 1 to `latent_side`, spaced geometrically."""
    if not 1 <= num_steps <= latent_side or (num_steps == 1) != (latent_side == 1):
        raise UsageError(
            f"{num_steps} steps do not fit a {latent_side}x{latent_side} latent",
            why="every step is a distinct side from 1 to the full latent",
            fix=f"use --steps between 2 and {latent_side}" if latent_side > 1 else "use --steps 1",
        )
    out: list[int] = []
    for i in range(num_steps):
        at = latent_side ** (i / (num_steps - 1)) if num_steps > 1 else 1.0
        low, high = (out[-1] + 1 if out else 1), latent_side - (num_steps - 1 - i)
        out.append(min(max(round(at), low), high))
    return tuple(out)


def resolve_schedule(
    config: FlexVARConfig, latent_side: int, *, num_steps: int | None = None, schedule: Sequence[int] | None = None
) -> tuple[int, ...]:
    """The schedule of one call: the one given (checked); `num_steps` sides spaced geometrically (the default
    sizes when they have that many steps and end at `latent_side`); or else the default sizes below
    `latent_side`, then `latent_side`."""
    if num_steps is not None and schedule is not None:
        raise UsageError("pass a number of steps or a schedule, not both", fix="drop --steps or --schedule")
    if schedule is not None:
        return check_schedule(schedule, config, latent_side)
    if num_steps is not None:
        if latent_side == config.latent_size and num_steps == len(config.default_sizes):
            return config.default_sizes
        return check_schedule(schedule_for_steps(num_steps, latent_side), config, latent_side)
    return check_schedule((*(s for s in config.default_sizes if s < latent_side), latent_side), config, latent_side)


def flex_guidance_scales(guidance_scale: float, sizes: Sequence[int], trained_side: int) -> list[float]:
    """Guidance per step: 1 + (s - 1) * min(k / min(K - 1, 9), 1), and s at every side over `trained_side`."""
    K = len(sizes)
    span = min(K - 1, 9)
    ratios = [1.0 if span == 0 or side > trained_side else min(k / span, 1.0) for k, side in enumerate(sizes)]
    return [1.0 + (guidance_scale - 1.0) * r for r in ratios]


@torch.no_grad()
def stream_flex_scales(
    model: FlexVAR,
    quantizer: NormalizedQuantizer,
    labels_B: torch.Tensor,
    sizes: Sequence[int],
    *,
    generator: torch.Generator,
    guidance_scale: float = 2.5,
    top_k: int = 0,
    top_p: float = 0.0,
    temperature: float = 1.0,
    processors: Sequence[LogitsProcessor] = (),
) -> Iterator[FlexScaleOutput]:
    """Sample the scales of `sizes` (a checked schedule) one by one, yielding each as soon as it exists.

    labels_B: (B,) class ids (`model.num_classes` = unconditional). Temperature 0 is greedy. `processors` run
    on the guided logits (B, l, V) with the scale index as step. The KV cache holds every scale's tokens.
    """
    labels, guided = guided_labels(labels_B, model.num_classes, guidance_scale)
    conditions = model.class_conditions(labels)
    cache = model.new_cache(
        labels.shape[0], sum(s * s for s in sizes), dtype=conditions.cond_BD.dtype, device=labels.device
    )

    def call(inputs: torch.Tensor, positions: torch.Tensor, *, cache: LayeredKVCache) -> torch.Tensor:
        return model.forward_scale(inputs, conditions, cache, positions_l=positions)

    trained = set(model.config.train_sizes)
    scales = flex_guidance_scales(guidance_scale, sizes, model.config.latent_size)
    sampler, greedy = Sampler(temperature=temperature, top_k=top_k, top_p=top_p), Sampler(temperature=0.0)
    logits, start = prefill(call, model.start_tokens(conditions.cond_BD), cache, keep_last=1)
    for k, side in enumerate(sizes):
        if guided:
            cond, uncond = logits.chunk(2, dim=0)
            logits = guide(cond, uncond, scales[k])
        logits = apply_processors(logits, k, processors)
        tokens = (sampler if side in trained else greedy)(logits, generator)  # B, l
        code = quantizer.code_map(tokens, side, side)  # B, Cv, side, side
        yield FlexScaleOutput(k, side, tokens, code)
        if k + 1 == len(sizes):
            break
        nxt = sizes[k + 1]
        x_BlC = model.scale_tokens(F.interpolate(code, size=(nxt, nxt), mode="bicubic")).to(conditions.cond_BD.dtype)
        inputs = torch.cat((x_BlC, x_BlC)) if guided else x_BlC
        logits = decode_step(call, inputs, torch.arange(start, start + nxt * nxt, device=labels.device), cache)
        start += nxt * nxt
