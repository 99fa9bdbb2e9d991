"""Attention masks built once from positions or level/chunk ids, and the cheapest SDPA arguments for them.

All masks are boolean with True = attend, shaped (L, S) for L queries and S keys (or with leading
batch/head axes when ids are per head). Causal masks are bottom-right aligned, so L new queries
against S >= L keys (a cache plus the new tokens) see every earlier key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias

import torch

from genmotion.errors import UsageError

MaskArg: TypeAlias = torch.Tensor | Literal["causal"] | None
"""What a model's `mask=` takes: None (attend to all), "causal" (by time position), or a boolean (L, S) tensor."""

__all__ = [
    "MaskArg",
    "bidirectional_mask",
    "block_causal_mask",
    "block_diagonal_mask",
    "can_use_is_causal",
    "causal_mask",
    "chunk_window_mask",
    "ids_from_lengths",
    "positional_causal_args",
    "sdpa_mask_args",
]


def causal_mask(q_len: int, k_len: int | None = None, *, device: torch.device | str | None = None) -> torch.Tensor:
    """(L, S) lower triangle aligned at the bottom right: query i sees keys j <= i + (S - L)."""
    k_len = q_len if k_len is None else k_len
    if k_len < q_len:
        raise UsageError(f"causal mask with {q_len} queries needs at least as many keys, got {k_len}")
    return torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril(diagonal=k_len - q_len)


def bidirectional_mask(
    q_len: int, k_len: int | None = None, *, device: torch.device | str | None = None
) -> torch.Tensor:
    """(L, S) all True; usually better expressed as `mask=None`."""
    return torch.ones(q_len, q_len if k_len is None else k_len, dtype=torch.bool, device=device)


def ids_from_lengths(lengths: Sequence[int], *, device: torch.device | str | None = None) -> torch.Tensor:
    """Level ids for consecutive blocks, e.g. VAR scales (1, 4, 9) -> [0, 1, 1, 1, 1, 2, ...] of length 14."""
    sizes = torch.tensor(list(lengths), dtype=torch.long, device=device)
    return torch.repeat_interleave(torch.arange(len(sizes), device=device), sizes)


def block_causal_mask(q_ids: torch.Tensor, k_ids: torch.Tensor | None = None) -> torch.Tensor:
    """(..., L, S): a query sees every key whose level/chunk id is <= its own (bidirectional inside a block)."""
    k_ids = q_ids if k_ids is None else k_ids
    return k_ids.unsqueeze(-2) <= q_ids.unsqueeze(-1)


def block_diagonal_mask(q_ids: torch.Tensor, k_ids: torch.Tensor | None = None) -> torch.Tensor:
    """(..., L, S): a query sees only keys with the same id (e.g. context tokens within their own frame)."""
    k_ids = q_ids if k_ids is None else k_ids
    return k_ids.unsqueeze(-2) == q_ids.unsqueeze(-1)


def chunk_window_mask(
    q_frame: torch.Tensor,
    q_chunk_start: torch.Tensor,
    k_frame: torch.Tensor,
    *,
    sink: int,
    window: int | None,
) -> torch.Tensor:
    """(L, S) frame-causal mask with an attention sink and a window counted from the query's chunk.

    Query at frame f, denoised in the chunk that starts at frame s, sees key frame g when g <= f and
    (g < sink or g >= s - window): the rule `RollingWindow`/`SharedClean` caches implement. `window=None`
    means no window (plain frame-causal).
    """
    causal = k_frame.unsqueeze(-2) <= q_frame.unsqueeze(-1)
    if window is None:
        return causal
    in_sink = (k_frame < sink).unsqueeze(-2)
    in_window = k_frame.unsqueeze(-2) >= (q_chunk_start - window).unsqueeze(-1)
    return causal & (in_sink | in_window)


def can_use_is_causal(mask: torch.Tensor) -> bool:
    """True when `mask` is exactly SDPA's `is_causal=True` pattern: square (L, L) lower triangle."""
    if mask.dim() < 2 or mask.shape[-1] != mask.shape[-2] or mask.dtype != torch.bool:
        return False
    tril = torch.ones(mask.shape[-2:], dtype=torch.bool, device=mask.device).tril()
    return bool(torch.equal(mask, tril.expand_as(mask)))


def sdpa_mask_args(mask: torch.Tensor | None) -> tuple[torch.Tensor | None, bool]:
    """(mask, is_causal) for `attend`: None when the mask is all True, the causal flag when it is a plain tril."""
    if mask is None or bool(mask.all()):
        return None, False
    if can_use_is_causal(mask):
        return None, True
    return mask, False


def positional_causal_args(q_pos: torch.Tensor, k_pos: torch.Tensor) -> tuple[torch.Tensor | None, bool]:
    """(mask, is_causal) for "a key is visible when its position <= the query's", without a dense mask if possible.

    `q_pos` (..., L) and `k_pos` (..., S) are time positions (frame, token or scale index). Tokens that share
    a position see each other, which makes this block-causal by frame when positions are frame indices.
    Fast paths: every key at or before every query (decode against a cache) -> no mask; identical strictly
    increasing positions (a forward without cache, or a prefill into an empty one) -> `is_causal=True`.
    Otherwise a dense (..., L, S) mask.
    """
    if k_pos.numel() == 0 or bool(k_pos.max() <= q_pos.min()):
        return None, False
    if k_pos.dim() > 1 and all(n == 1 for n in k_pos.shape[:-1]):
        k_pos = k_pos.reshape(-1)  # positions shared by every row and head, e.g. from KVCache.extend
    if q_pos.dim() == 1 and k_pos.dim() == 1 and q_pos.shape == k_pos.shape and bool(torch.equal(q_pos, k_pos)):
        if q_pos.numel() < 2 or bool((q_pos[1:] > q_pos[:-1]).all()):
            return None, True
    return k_pos.unsqueeze(-2) <= q_pos.unsqueeze(-1), False
