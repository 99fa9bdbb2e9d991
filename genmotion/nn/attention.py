"""Attention behind a backend seam: PyTorch SDPA by default, a plain math reference, room for GPU kernels.

Axes: B batch, H heads, L queries, S keys, D head dim. Boolean masks are True where a query may
attend a key (additive float masks: 0 / -inf); they broadcast to (B, H, L, S) and are usually (L, S).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeAlias

import torch
import torch.nn.functional as F

from genmotion.errors import UsageError

__all__ = [
    "AttentionBackend",
    "attend",
    "attention_backends",
    "register_attention_backend",
]


AttentionBackend: TypeAlias = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, bool, float | None], torch.Tensor
]
"""A kernel `(q_BHLD, k_BHSD, v_BHSD, mask, is_causal, scale) -> (B, H, L, D)`, called positionally:
softmax(q k^T * scale, masked) v with SDPA's argument conventions (`_math` is the reference)."""


def _math(
    q_BHLD: torch.Tensor,
    k_BHSD: torch.Tensor,
    v_BHSD: torch.Tensor,
    mask: torch.Tensor | None,
    is_causal: bool,
    scale: float | None,
) -> torch.Tensor:
    """The reference every other backend is tested against; SDPA's top-left `is_causal` convention."""
    scale = 1.0 / math.sqrt(q_BHLD.shape[-1]) if scale is None else scale
    scores_BHLS = torch.matmul(q_BHLD, k_BHSD.transpose(-2, -1)) * scale
    L, S = scores_BHLS.shape[-2:]
    if is_causal:
        causal = torch.ones(L, S, dtype=torch.bool, device=q_BHLD.device).tril()
        scores_BHLS = scores_BHLS.masked_fill(~causal, float("-inf"))
    if mask is not None:
        scores_BHLS = scores_BHLS + mask if mask.is_floating_point() else scores_BHLS.masked_fill(~mask, float("-inf"))
    return torch.matmul(torch.softmax(scores_BHLS, dim=-1), v_BHSD)


_BACKENDS: dict[str, AttentionBackend] = {
    # SDPA itself, its mask keyword renamed to the backend convention's
    "sdpa": lambda q, k, v, mask, is_causal, scale: F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale
    ),
    "math": _math,
}


def register_attention_backend(name: str, kernel: AttentionBackend, *, replace: bool = False) -> None:
    """Make `kernel` selectable as `attend(..., backend=name)` (e.g. a GPU-only kernel where it wins)."""
    if name in _BACKENDS and not replace:
        raise UsageError(
            f"attention backend {name!r} is already registered",
            fix="pick another name, or pass replace=True to swap the kernel on purpose",
        )
    _BACKENDS[name] = kernel


def attention_backends() -> tuple[str, ...]:
    """Names accepted by `attend(..., backend=...)`."""
    return tuple(sorted(_BACKENDS))


def attend(
    q_BHLD: torch.Tensor,
    k_BHSD: torch.Tensor,
    v_BHSD: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    backend: str = "sdpa",
    scale: float | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention, (B, H, L, D) x (B, H, S, D) -> (B, H, L, D).

    `mask` is boolean, True = attend, or additive (0 / -inf, the queries' dtype: what SDPA turns a boolean
    mask into at every call, so a mask reused across calls can be converted once), broadcastable to
    (B, H, L, S). `is_causal=True` means SDPA's top-left lower triangle and is only right when L == S;
    `genmotion.nn.masks.sdpa_mask_args` turns a mask into the cheapest equivalent arguments. A dense mask
    costs about 2x the causal flag on CPU.
    """
    kernel = _BACKENDS.get(backend)
    if kernel is None:
        raise UsageError(
            f"unknown attention backend {backend!r}",
            fix=f"use one of {list(attention_backends())} or register one with register_attention_backend",
        )
    if mask is not None and is_causal:
        raise UsageError(
            "attend got both a mask and is_causal=True",
            why="SDPA accepts one or the other",
            fix="fold the causal part into the mask (genmotion.nn.masks.causal_mask) or drop the mask",
        )
    if mask is not None and mask.dtype != torch.bool and mask.dtype != q_BHLD.dtype:
        raise UsageError(
            f"attention mask must be boolean (True = attend) or additive in the queries' dtype {q_BHLD.dtype}, "
            f"got {mask.dtype}",
            fix="pass mask.bool(), or an additive mask (0 = attend, -inf = not) of the queries' dtype",
        )
    return kernel(q_BHLD, k_BHSD, v_BHSD, mask, is_causal, scale)
