"""Scale-Markov sampling and training of the VAR backbone: HMAR (Kumbong et al., 2025) and MVAR (2026).

A scale-Markov model (`VARConfig.markov`) attends only within the current scale; the scale's input is f_hat of
all coarser scales area-downsampled to it, so sampling runs each scale alone through the transformer with the
class condition and keeps no KV cache (MVAR adds a spatial window inside the fine scales, in the model).
HMAR's masked refinement (`VARConfig.mask_depth`) re-predicts the least confident tokens of a scale over a
schedule of passes that the sampler chooses (`refine`, e.g. (1, 1, 2, 3, 1, 1)): after the one-shot next-scale
pass, `masked_counts` tokens stay hidden and are re-sampled by the refinement branch, which sees the scale's
other tokens; the least confident of the new samples are hidden again until the last pass.

Axis legend: B batch, l tokens of one scale, L all scales, V vocabulary, Cv tokenizer latent channels,
H/W finest latent size, K number of scales.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from genmotion.errors import UsageError
from genmotion.image_core.labels import guided_labels
from genmotion.image_core.var_model import VAR, ClassConditions
from genmotion.image_core.variants import parse_refine
from genmotion.nn.quantizer import MultiScaleQuantizer
from genmotion.sampling.guidance import GuidanceSchedule, guidance_schedule, guide
from genmotion.sampling.logits import LogitsProcessor, Sampler, apply_processors

__all__ = [
    "check_refine",
    "mask_inputs",
    "mask_loss",
    "masked_counts",
    "own_codes",
    "parse_refine",
    "stream_markov_scales",
]


def check_refine(refine: Sequence[int], var: VAR) -> tuple[int, ...]:
    """`refine` checked against the model: one count per scale, at most a scale's tokens, a refinement branch."""
    steps, sides = tuple(int(s) for s in refine), var.patch_nums
    if not steps:
        return steps
    if len(steps) != len(sides):
        raise UsageError(
            f"refine schedule {list(steps)} has {len(steps)} entries but the model has {len(sides)} scales {sides}",
            fix=f"give one pass count per scale, e.g. {','.join('1' for _ in sides)}",
        )
    if any(s > 1 for s in steps) and not var.config.mask_depth:
        raise UsageError(
            "this model has no masked-refinement branch (mask_depth: 0), so it cannot refine",
            fix="drop --refine, or use an HMAR checkpoint (genmotion image --model hmar)",
        )
    too_many = [(s, p) for s, p in zip(steps, sides, strict=True) if s > max(1, p * p)]
    if any(s < 1 for s in steps) or too_many:
        raise UsageError(
            f"refine schedule {list(steps)} does not fit the scales {sides}",
            why="each count must be >= 1 and at most the scale's tokens (a 1x1 scale takes only 1)",
            fix="lower the counts, e.g. 1,1,2,3,1,1",
        )
    return steps


def masked_counts(tokens: int, steps: int) -> list[int]:
    """Tokens of a scale still hidden after each of its `steps` passes (cosine schedule, ending at 0)."""
    return [math.floor(tokens * math.cos(math.pi / 2 * (s + 1) / steps)) for s in range(steps - 1)] + [0]


def own_codes(quantizer: MultiScaleQuantizer, scale_index: int, idx_Bl: torch.Tensor) -> torch.Tensor:
    """What scale `scale_index`'s own tokens add to f_hat, seen at its resolution: area(phi(up(code))), (B, l, Cv)."""
    B, pn, H = idx_Bl.shape[0], quantizer.patch_nums[scale_index], quantizer.patch_nums[-1]
    code = quantizer.embedding(idx_Bl).transpose(1, 2).reshape(B, -1, pn, pn)
    if scale_index != len(quantizer.patch_nums) - 1:
        code = F.interpolate(code, size=(H, H), mode="bicubic")
    h = quantizer.phi(scale_index, code)
    h = F.interpolate(h, size=(pn, pn), mode="area") if pn != H else h
    return h.flatten(2).transpose(1, 2)


def mask_inputs(
    quantizer: MultiScaleQuantizer, indices: Sequence[torch.Tensor], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forcing input of the refinement branch: each scale's own codes (B, L - first_l, Cv) and which are
    hidden (B, L - first_l), at a masking rate drawn uniformly per image (HMAR draws one per step)."""
    h = torch.cat([own_codes(quantizer, si, idx) for si, idx in enumerate(indices) if si > 0], dim=1)
    B, rows = h.shape[0], h.shape[1]
    device = generator.device
    rate = torch.rand(B, 1, generator=generator, device=device)
    masked = torch.rand(B, rows, generator=generator, device=device) < rate
    return h, masked.to(h.device)


def mask_loss(
    var: VAR, quantizer: MultiScaleQuantizer, labels_B: torch.Tensor, indices: Sequence[torch.Tensor],
    x_BLCv: torch.Tensor, generator: torch.Generator,
) -> tuple[torch.Tensor, float]:  # fmt: skip
    """Cross-entropy of the refinement branch on the hidden tokens, and its accuracy there."""
    with torch.no_grad():
        h, masked = mask_inputs(quantizer, indices, generator)
    logits = var.forward_mask(labels_B, x_BLCv, h, masked)[:, var.first_l :]  # B, L - first_l, V
    target = torch.cat(list(indices)[1:], dim=1)
    if not bool(masked.any()):
        return logits.sum() * 0.0, 0.0
    loss = F.cross_entropy(logits[masked], target[masked])
    return loss, float((logits[masked].argmax(-1) == target[masked]).float().mean())


class _Scales:
    """The per-scale calls of one sampling run: the model (guided when guidance is on) and the sampler."""

    def __init__(
        self, var: VAR, conditions: ClassConditions, schedule: GuidanceSchedule, guided: bool, sampler: Sampler,
        processors: Sequence[LogitsProcessor], generator: torch.Generator,
    ) -> None:  # fmt: skip
        self.var, self.conditions, self.schedule, self.guided = var, conditions, schedule, guided
        self.sampler, self.processors, self.generator = sampler, processors, generator

    def rows(self, x_BlC: torch.Tensor) -> torch.Tensor:
        """B rows of an input -> the rows the model sees (conditional then unconditional when guided)."""
        return x_BlC.repeat(2, 1, 1) if self.guided else x_BlC

    def logits(self, x_BlC: torch.Tensor, si: int, *, mask: bool = False) -> torch.Tensor:
        """Guided, processed logits (B, l, V) of scale `si` from its embedded input (2B rows when guided)."""
        logits = self.var.forward_markov_scale(x_BlC.to(self.conditions.cond_BD.dtype), self.conditions, si, mask=mask)
        if self.guided:
            cond, uncond = logits.chunk(2, dim=0)
            logits = guide(cond, uncond, self.schedule(si, len(self.var.patch_nums)))
        return apply_processors(logits, si, self.processors)

    def sample(self, logits_BlV: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled tokens (B, l) and their probabilities under `logits_BlV` (their confidence)."""
        idx = self.sampler(logits_BlV, self.generator)
        return idx, logits_BlV.float().softmax(-1).gather(-1, idx.unsqueeze(-1)).squeeze(-1)

    def refine(
        self, quantizer: MultiScaleQuantizer, si: int, x_BlCv: torch.Tensor, idx: torch.Tensor,
        confidence: torch.Tensor, steps: int,
    ) -> torch.Tensor:  # fmt: skip
        """HMAR's passes 2..steps at scale `si`: hide the least confident tokens, re-sample them with the
        refinement branch (which sees the scale's other tokens), keep the confident ones; tokens (B, l)."""
        begin, end = self.var.config.scale_slices[si]
        positions = self.var.level_positions()[:, begin:end]
        counts = masked_counts(end - begin, steps)
        hide = confidence.argsort(dim=1)[:, : counts[0]]  # B, m: least confident first
        for step in range(1, steps):
            masked = torch.zeros_like(idx, dtype=torch.bool).scatter_(1, hide, True)
            h = own_codes(quantizer, si, idx)
            x = self.var.masked_tokens(x_BlCv, h, masked) + positions
            new, new_confidence = self.sample(self.logits(self.rows(x), si, mask=True))
            idx = torch.where(masked, new, idx)
            if counts[step]:
                hide = new_confidence.masked_fill(~masked, math.inf).argsort(dim=1)[:, : counts[step]]
        return idx


@torch.no_grad()
def stream_markov_scales(
    var: VAR,
    quantizer: MultiScaleQuantizer,
    labels_B: torch.Tensor,
    *,
    generator: torch.Generator,
    guidance_scale: float = 2.5,
    top_k: int = 0,
    top_p: float = 0.0,
    temperature: float = 1.0,
    processors: Sequence[LogitsProcessor] = (),
    refine: Sequence[int] = (),
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Sample a scale-Markov model scale by scale with no KV cache, yielding (scale index, tokens (B, l),
    f_hat (B, Cv, H, W)). Settings as in `genmotion.image_core.sampler.stream_scales`; `refine`: passes per
    scale (needs the refinement branch where a count is > 1; () = one pass everywhere)."""
    steps = check_refine(refine, var) or (1,) * len(var.patch_nums)
    B, K, Cv, H = labels_B.shape[0], len(var.patch_nums), var.Cvae, var.patch_nums[-1]
    labels, guided = guided_labels(labels_B, var.num_classes, guidance_scale)
    conditions = var.class_conditions(labels)
    sampler = Sampler(temperature=temperature, top_k=top_k, top_p=top_p)
    calls = _Scales(var, conditions, guidance_schedule("linear", guidance_scale), guided, sampler, processors,
                    generator)  # fmt: skip
    f_hat = torch.zeros(B, Cv, H, H, device=conditions.cond_BD.device)
    x_BlC, x_BlCv = var.start_tokens(conditions.cond_BD), f_hat.new_zeros(B, 1, Cv)  # x: 2B rows when guided
    for si, pn in enumerate(var.patch_nums):
        idx, confidence = calls.sample(calls.logits(x_BlC, si))
        if steps[si] > 1:
            idx = calls.refine(quantizer, si, x_BlCv, idx, confidence, steps[si])
        h_BChw = quantizer.embedding(idx).transpose(1, 2).reshape(B, Cv, pn, pn)
        f_hat, next_map = quantizer.next_autoregressive_input(si, f_hat, h_BChw)
        yield si, idx, f_hat
        if si + 1 < K:
            x_BlCv = next_map.view(B, Cv, -1).transpose(1, 2)
            x_BlC = calls.rows(var.scale_tokens(si + 1, x_BlCv))
