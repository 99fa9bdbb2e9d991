"""Token sampling: temperature, top-k, top-p with an explicit torch.Generator, Gumbel helpers, logits hooks.

The library never seeds globally; every random draw takes the caller's generator. Axes: B batch,
L tokens sampled together (1 for next-token, a whole scale for next-scale), V vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from genmotion.errors import UsageError

__all__ = [
    "LogitsProcessor",
    "Sampler",
    "apply_processors",
    "force_tokens",
    "gumbel_noise",
    "gumbel_softmax",
    "sample_logits",
    "top_k_filter",
    "top_p_filter",
]

LogitsProcessor = Callable[[torch.Tensor, int], torch.Tensor]
"""A hook `(logits_BLV, step) -> logits_BLV` run before sampling (token forcing, watermark bias, ...)."""


def apply_processors(logits_BLV: torch.Tensor, step: int, processors: Sequence[LogitsProcessor]) -> torch.Tensor:
    for processor in processors:
        logits_BLV = processor(logits_BLV, step)
    return logits_BLV


def force_tokens(logits_BLV: torch.Tensor, tokens_BL: torch.Tensor, mask_BL: torch.Tensor) -> torch.Tensor:
    """Where `mask_BL` holds, all the mass on `tokens_BL` (every other logit -inf, so any sampler, greedy or
    not, yields that token); elsewhere the logits as they are. tokens (B, L) long, mask (B, L) bool."""
    forced = torch.full_like(logits_BLV, float("-inf")).scatter_(-1, tokens_BL.unsqueeze(-1), 0.0)
    return torch.where(mask_BL.unsqueeze(-1), forced, logits_BLV)


def top_k_filter(logits_BLV: torch.Tensor, top_k: int) -> torch.Tensor:
    """Set every logit below the k-th largest to -inf (ties with the k-th are kept). 0 disables."""
    if top_k <= 0 or top_k >= logits_BLV.shape[-1]:
        return logits_BLV
    kth = torch.topk(logits_BLV, top_k, dim=-1).values[..., -1:]
    return logits_BLV.masked_fill(logits_BLV < kth, float("-inf"))


def top_p_filter(logits_BLV: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the nucleus: the most likely tokens whose probabilities first reach `top_p` (the top one always).

    0 (or >= 1) disables the filter.
    """
    if top_p <= 0.0 or top_p >= 1.0:
        return logits_BLV
    sorted_logits, order = torch.sort(logits_BLV, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # probability of the strictly more likely tokens
    drop_sorted = mass_before >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits_BLV.masked_fill(drop, float("-inf"))


def sample_logits(
    logits_BLV: torch.Tensor,
    generator: torch.Generator | None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 0.0,
) -> torch.Tensor:
    """Draw one token per position: (B, L, V) -> (B, L) long. temperature 0 means argmax (no draw)."""
    if temperature < 0:
        raise UsageError(f"temperature must be >= 0, got {temperature}", fix="use 0 for greedy, 1 for plain sampling")
    if temperature == 0.0:
        return logits_BLV.argmax(dim=-1)
    logits = top_p_filter(top_k_filter(logits_BLV.float() / temperature, top_k), top_p)
    probs = logits.softmax(dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).view(logits_BLV.shape[:-1])


@dataclass(frozen=True, kw_only=True)
class Sampler:
    """`sample_logits` with its settings bound: `sampler(logits_BLV, generator) -> idx_BL`."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.0

    def __call__(self, logits_BLV: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return sample_logits(logits_BLV, generator, self.temperature, self.top_k, self.top_p)


def gumbel_noise(
    shape: torch.Size | tuple[int, ...], generator: torch.Generator | None, *, like: torch.Tensor
) -> torch.Tensor:
    """Standard Gumbel samples -log(-log U) with the dtype and device of `like`."""
    u = torch.rand(shape, generator=generator, device=like.device, dtype=torch.float32)
    eps = torch.finfo(torch.float32).tiny
    return (-torch.log((-torch.log(u.clamp_min(eps))).clamp_min(eps))).to(like.dtype)


def gumbel_softmax(
    logits_BLV: torch.Tensor, generator: torch.Generator | None, tau: float = 1.0, hard: bool = False
) -> torch.Tensor:
    """Gumbel-softmax weights over V (VAR's "more smooth" f_hat uses these to mix code embeddings).

    hard=True returns one-hot samples with the soft gradient (straight-through).
    """
    y = ((logits_BLV + gumbel_noise(logits_BLV.shape, generator, like=logits_BLV)) / tau).softmax(dim=-1)
    if not hard:
        return y
    one_hot = torch.zeros_like(y).scatter_(-1, y.argmax(dim=-1, keepdim=True), 1.0)
    return one_hot - y.detach() + y
