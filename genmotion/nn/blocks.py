"""Transformer blocks: multi-head attention with RoPE and a KV cache, an MLP, pre-norm and AdaLN blocks.

AdaLN follows VAR/DiT: a condition vector is mapped to six per-channel vectors (shift, scale, gate
for attention and for the MLP). Axes: B batch, L tokens, C channels, H heads, D head dim, S keys.
A mask argument is None (attend to everything), "causal" (a key is visible when its time position
is <= the query's; with a cache it is resolved against the cached positions) or a boolean tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genmotion.cache.kv import KVCache
from genmotion.errors import UsageError
from genmotion.nn.attention import attend
from genmotion.nn.masks import MaskArg, positional_causal_args
from genmotion.nn.rope import Rotary

__all__ = ["AdaLNBlock", "Attention", "MLP", "PreNormBlock", "TokenConditions"]


@dataclass(frozen=True)
class TokenConditions:
    """A few distinct AdaLN conditions and which one each token uses: `rows` U x (B, E), `index` (B, L) long
    into them (None: every token uses rows[0]). AdaLN blocks map each row separately and gather per token,
    so a token's modulation is computed by the same ops on the same shapes however its call mixes flow
    times: a cached denoising step and a full recompute modulate it with bit-identical vectors (a matmul's
    rounding depends on how many rows it is given), at the cost of U small matmuls instead of one per token."""

    rows: tuple[torch.Tensor, ...]
    index: torch.Tensor | None = None

    def modulation(self, ada: nn.Module) -> torch.Tensor:
        """`ada` applied per row -> (B, 1, M) when one row serves every token, else (B, L, M)."""
        mods = [ada(row) for row in self.rows]  # U x (B, M)
        if self.index is None:
            return mods[0].unsqueeze(1)
        table = torch.stack(mods, dim=1)  # (B, U, M)
        return table.gather(1, self.index.unsqueeze(-1).expand(-1, -1, table.shape[-1]))


def _time(positions: torch.Tensor, axes: int) -> torch.Tensor:
    return positions[..., 0] if axes > 1 else positions


def _per_head(positions: torch.Tensor, axes: int) -> torch.Tensor:
    """Positions (L), (B, L) or (B, H, L) (each with a trailing A axis when multi-axis) -> broadcastable to heads."""
    base = 2 if axes > 1 else 1
    if positions.dim() == base + 1:
        return positions.unsqueeze(1)
    if positions.dim() in (base, base + 2):
        return positions
    raise UsageError(
        f"positions shaped {tuple(positions.shape)} do not fit a {axes}-axis RoPE",
        fix="pass (L), (B, L) or (B, H, L) positions, with a trailing axis per RoPE axis when there are several",
    )


class Attention(nn.Module):
    """Multi-head self-attention; RoPE is applied to q and to every key read from the cache, at call time."""

    def __init__(self, dim: int, heads: int, *, qkv_bias: bool = False, backend: str = "sdpa") -> None:
        super().__init__()
        if dim % heads:
            raise UsageError(f"width {dim} is not divisible by {heads} heads", fix="pick heads that divide the width")
        self.heads, self.head_dim, self.backend = heads, dim // heads, backend
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x_BLC: torch.Tensor,
        positions: torch.Tensor,
        rotary: Rotary,
        *,
        cache: KVCache | None = None,
        commit: bool = True,
        mask: MaskArg = "causal",
        is_causal: bool = False,
    ) -> torch.Tensor:
        """x (B, L, C), positions (L[, A]) or (B, L[, A]) -> (B, L, C); with a cache, keys are cache + new."""
        B, L, C = x_BLC.shape
        q, k, v = self.qkv(x_BLC).view(B, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # 3 x (B,H,L,D)
        axes = rotary.num_axes
        pos_q = _per_head(positions, axes)  # (L[, A]), (B, 1, L[, A]) or (B, H, L[, A])
        pos_k = pos_q
        if cache is not None:
            k, v, pos_k = cache.extend(k, v, pos_q, commit=commit)  # (B,H,S,D), (B,H,S,D), (B,H,S[,A])
        if isinstance(mask, str):
            mask, is_causal = positional_causal_args(_time(pos_q, axes), _time(pos_k, axes))
        q, k = rotary(q, pos_q), rotary(k, pos_k)
        out_BHLD = attend(q, k, v, mask=mask, is_causal=is_causal, backend=self.backend)
        return self.proj(out_BHLD.transpose(1, 2).reshape(B, L, C))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim)

    def forward(self, x_BLC: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x_BLC)))


class PreNormBlock(nn.Module):
    """x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, heads: int, *, mlp_ratio: float = 4.0, backend: str = "sdpa") -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, backend=backend)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(
        self,
        x_BLC: torch.Tensor,
        positions: torch.Tensor,
        rotary: Rotary,
        *,
        cond: torch.Tensor | None = None,
        cache: KVCache | None = None,
        commit: bool = True,
        mask: MaskArg = "causal",
        is_causal: bool = False,
    ) -> torch.Tensor:
        """x (B, L, C) -> (B, L, C); `cond` is accepted for a uniform signature and ignored."""
        h = self.norm1(x_BLC)
        x_BLC = x_BLC + self.attn(h, positions, rotary, cache=cache, commit=commit, mask=mask, is_causal=is_causal)
        return x_BLC + self.mlp(self.norm2(x_BLC))


class AdaLNBlock(nn.Module):
    """VAR-style AdaLN block: six condition-dependent vectors modulate the two sub-layers.

    `ada_lin` maps cond (B, E) or per token (B, L, E) to (shift, scale, gate) for attention and for the
    MLP; sub-layer inputs are norm(x) * (1 + scale) + shift and their outputs are multiplied by gate.
    """

    def __init__(self, dim: int, heads: int, cond_dim: int, *, mlp_ratio: float = 4.0, backend: str = "sdpa") -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads, backend=backend)
        self.mlp = MLP(dim, int(dim * mlp_ratio))
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * dim))

    def forward(
        self,
        x_BLC: torch.Tensor,
        positions: torch.Tensor,
        rotary: Rotary,
        *,
        cond: torch.Tensor | TokenConditions | None = None,
        cache: KVCache | None = None,
        commit: bool = True,
        mask: MaskArg = "causal",
        is_causal: bool = False,
    ) -> torch.Tensor:
        """x (B, L, C), cond (B, E), (B, L, E) or `TokenConditions` -> (B, L, C)."""
        if cond is None:
            raise UsageError("an AdaLN block needs a condition", fix="pass cond=(B, E) or (B, L, E)")
        if isinstance(cond, TokenConditions):
            mod = cond.modulation(self.ada_lin)
        else:
            mod = self.ada_lin(cond)
            if mod.dim() == 2:
                mod = mod.unsqueeze(1)  # (B, 1, 6C)
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = mod.chunk(6, dim=-1)
        h = self.norm1(x_BLC) * (1 + scale_a) + shift_a
        h = self.attn(h, positions, rotary, cache=cache, commit=commit, mask=mask, is_causal=is_causal)
        x_BLC = x_BLC + gate_a * h
        h = self.norm2(x_BLC) * (1 + scale_m) + shift_m
        return x_BLC + gate_m * self.mlp(h)
