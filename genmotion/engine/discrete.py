"""The discrete AR loop: next-token and next-scale (VAR, VideoAR, RigAnything's parent/stop tokens).

Generation proceeds in blocks: block 0 is predicted from the prompt by `prefill`; block k >= 1 by
`decode_step` from an input of `block_sizes[k]` tokens built from block k-1 by `embed_next` (the
sampled tokens themselves for next-token; VAR's upsampled f_hat for next-scale). `decode_step` has the
same input shape at every next-token step, so it can be compiled from outside
(`decode_fn=torch.compile(decode_step)`). Axes: B batch, T prompt length, L block length, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch

from genmotion.errors import UsageError
from genmotion.kv.layered import LayeredKVCache
from genmotion.sampling.guidance import guidance_schedule, guide
from genmotion.sampling.logits import LogitsProcessor, apply_processors

__all__ = [
    "DecodeFn",
    "TokenChunk",
    "TokenLoopConfig",
    "TokenModel",
    "TokenSampler",
    "decode_step",
    "generate_tokens",
    "prefill",
    "token_stream",
]


class TokenModel(Protocol):
    """`model(inputs, positions_L, cache=cache) -> logits (B, L, V)`; inputs are token ids or embeddings."""

    def __call__(self, inputs: torch.Tensor, positions: torch.Tensor, *, cache: LayeredKVCache) -> torch.Tensor: ...


TokenSampler = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]
"""`(logits_BLV, generator) -> idx_BL`, e.g. `genmotion.sampling.Sampler(top_k=...)`."""
DecodeFn = Callable[[Any, torch.Tensor, torch.Tensor, LayeredKVCache], torch.Tensor]


@dataclass(frozen=True, kw_only=True)
class TokenLoopConfig:
    """Tokens per step and guidance. Next-token: `block_sizes=(1,) * n`; VAR: (1, 4, 9, 16, ...).

    With `guidance_scale != 1` the model sees 2B rows (conditional first, unconditional second; the
    prompt and the cache must have 2B rows) and logits are combined per step with the schedule.
    """

    block_sizes: tuple[int, ...]
    guidance_scale: float = 1.0  # 1 = off; uncond + s (cond - uncond), per step by the schedule
    guidance: Literal["constant", "linear"] = "constant"
    paired: bool = False  # rows are (conditional, unconditional) pairs even at guidance_scale 1 (a caller that
    # guides only some calls on one cache, e.g. VideoAR's frames after the first)

    def __post_init__(self) -> None:
        if not self.block_sizes or min(self.block_sizes) < 1:
            raise ValueError(f"block_sizes must be positive, got {self.block_sizes}")

    @property
    def num_tokens(self) -> int:
        return sum(self.block_sizes)


@dataclass(frozen=True)
class TokenChunk:
    """The tokens sampled at one step: `tokens` (B, L) of block `index`."""

    index: int
    tokens: torch.Tensor


@torch.no_grad()
def prefill(
    model: TokenModel, prompt: torch.Tensor, cache: LayeredKVCache, *, keep_last: int
) -> tuple[torch.Tensor, int]:
    """Run the whole prompt (B, T[, C]) at positions [0, T) into an empty cache; returns the logits of its last
    `keep_last` positions (B, keep_last, V), which predict block 0, and T, where decoding continues.

    Variable length and run once, so it is never compiled; an occupied cache is refused (a prefill over old
    entries would attend to another sequence)."""
    if cache.length != 0:
        raise UsageError(f"prefill needs an empty cache, this one holds {cache.length} tokens", fix="reset it first")
    T = prompt.shape[1]
    if not 1 <= keep_last <= T:
        raise UsageError(f"the first block ({keep_last} tokens) does not fit the prompt ({T} tokens)")
    logits = model(prompt, torch.arange(T, device=prompt.device), cache=cache)
    return logits[:, T - keep_last :], T


@torch.no_grad()
def decode_step(
    model: TokenModel, inputs: torch.Tensor, positions: torch.Tensor, cache: LayeredKVCache
) -> torch.Tensor:
    """One block (B, L[, C]) at positions (L,) against the cache, appending it; logits (B, L, V).

    No Python branching on values and the same shapes at every next-token step, so
    `decode_fn=torch.compile(decode_step)` traces it once."""
    return model(inputs, positions, cache=cache)


def _identity_next(tokens_BL: torch.Tensor, step: int) -> torch.Tensor:
    return tokens_BL


def token_stream(
    model: TokenModel,
    prompt: torch.Tensor,
    config: TokenLoopConfig,
    *,
    cache: LayeredKVCache,
    sampler: TokenSampler,
    generator: torch.Generator | None,
    embed_next: Callable[[torch.Tensor, int], torch.Tensor] = _identity_next,
    processors: Sequence[LogitsProcessor] = (),
    decode_fn: DecodeFn = decode_step,
) -> Iterator[TokenChunk]:
    """Yield one `TokenChunk` per block. `prompt` (B', T[, C]) occupies positions [0, T).

    `embed_next(tokens, k)` turns block k-1's tokens (B', L_{k-1}) into the input of step k, which must have
    `block_sizes[k]` rows along dim 1; step k's input sits at positions T + sum(block_sizes[1:k]) onward.
    """
    sizes = config.block_sizes
    guided = config.guidance_scale != 1.0 or config.paired
    schedule = guidance_schedule(config.guidance, config.guidance_scale)
    device = prompt.device
    logits, start = prefill(model, prompt, cache, keep_last=sizes[0])
    for k in range(len(sizes)):
        if guided:
            cond, uncond = logits.chunk(2, dim=0)
            logits = guide(cond, uncond, schedule(k, len(sizes)))
        tokens = sampler(apply_processors(logits, k, processors), generator)  # (B, L)
        yield TokenChunk(index=k, tokens=tokens)
        if k + 1 == len(sizes):
            break
        size = sizes[k + 1]
        inputs = embed_next(torch.cat([tokens, tokens]) if guided else tokens, k + 1)
        if inputs.shape[1] != size:
            raise UsageError(f"embed_next gave {inputs.shape[1]} tokens for block {k + 1} of {size}")
        logits = decode_fn(model, inputs, torch.arange(start, start + size, device=device), cache)
        start += size


def generate_tokens(model: TokenModel, prompt: torch.Tensor, config: TokenLoopConfig, **options: Any) -> torch.Tensor:
    """All sampled tokens (B, sum(block_sizes)): `token_stream` collected (same keywords: cache, sampler, ...)."""
    return torch.cat([c.tokens for c in token_stream(model, prompt, config, **options)], dim=1)
