"""Blocks of the VAR transformer: AdaLN-modulated self-attention blocks and the AdaLN before the head.

Follows VAR (Tian et al., 2024); attribute names match the official `basic_var.py` so state dicts load
key for key (`blocks.{i}.attn.mat_qkv.weight`, `blocks.{i}.ada_lin.1.weight`, ...). The cache is data
passed in (`cache=`), never a module flag.

Axis legend: B batch, L tokens (all scales, or the new scale's l tokens when decoding with a cache),
C width, D condition width (= C), H heads, c head dim, V vocabulary.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genmotion.cache import KVCache
from genmotion.cache.probe import AttentionCall, history
from genmotion.image_core.head_cache import HeadGroupCache, attend_cached
from genmotion.image_core.neighbourhood import neighbourhood_attention

__all__ = ["FFN", "AdaLNBeforeHead", "AdaLNSelfAttn", "DropPath", "SelfAttention", "SharedAdaLin"]


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, drop_prob: float) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)


class FFN(nn.Module):
    """fc1 -> GELU(tanh) -> fc2."""

    def __init__(self, width: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, width)
        self.drop = nn.Dropout(drop) if drop > 0 else nn.Identity()

    def forward(self, x_BLC: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x_BLC))))


class SelfAttention(nn.Module):
    """Multi-head self-attention; with `attn_l2_norm`, q and k are unit vectors and q is scaled by a
    learned per-head factor exp(min(s_h, log 100)) (cosine attention) instead of 1/sqrt(c)."""

    zero_k_bias: torch.Tensor

    def __init__(self, width: int, num_heads: int, *, attn_drop: float, proj_drop: float, attn_l2_norm: bool) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, width // num_heads
        self.attn_l2_norm = attn_l2_norm
        if attn_l2_norm:
            self.scale = 1.0
            self.scale_mul_1H11 = nn.Parameter(torch.full((1, num_heads, 1, 1), 4.0).log())
            self.max_scale_mul = math.log(100)
        else:
            self.scale = 0.25 / math.sqrt(self.head_dim)
        self.mat_qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_bias, self.v_bias = nn.Parameter(torch.zeros(width)), nn.Parameter(torch.zeros(width))
        self.register_buffer("zero_k_bias", torch.zeros(width))
        self.proj = nn.Linear(width, width)
        self.proj_drop = nn.Dropout(proj_drop) if proj_drop > 0 else nn.Identity()
        self.attn_drop = attn_drop

    def qkv(self, x_BLC: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys, values (B, H, L, c) after the optional L2 normalisation (keys as cached)."""
        B, L, C = x_BLC.shape
        bias = torch.cat((self.q_bias, self.zero_k_bias, self.v_bias))
        qkv = F.linear(x_BLC, self.mat_qkv.weight, bias).view(B, L, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each B, H, L, c
        if self.attn_l2_norm:
            scale_mul = self.scale_mul_1H11.clamp_max(self.max_scale_mul).exp()
            q = F.normalize(q, dim=-1).mul(scale_mul)
            k = F.normalize(k, dim=-1)
        return q, k, v

    def forward(
        self,
        x_BLC: torch.Tensor,
        attn_bias: torch.Tensor | None,
        cache: KVCache | HeadGroupCache | None = None,
        *,
        positions_L: torch.Tensor | None = None,
        commit: bool = True,
        neighbourhood: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """x (B, L, C) -> (B, L, C). With `cache`, the L new tokens attend to every cached token and to
        each other (one scale is a block of the block-causal mask), and are appended when `commit`.
        `neighbourhood` (side, kernel): the L tokens are one side x side map and each attends to its window."""
        B, L, C = x_BLC.shape
        q, k, v = self.qkv(x_BLC)
        if neighbourhood is not None:
            side, kernel = neighbourhood
            out = neighbourhood_attention(q, k, v, side=side, kernel=kernel, scale=self.scale)
        elif cache is not None:
            out = attend_cached(cache, q, k, v, positions_L, scale=self.scale, commit=commit)
        else:
            bias = attn_bias.to(q.dtype) if attn_bias is not None else None
            dropout_p = self.attn_drop if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, bias, dropout_p, scale=self.scale)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(B, L, C)))

    def probe_call(
        self, layer: int, args: tuple[Any, ...], kwargs: dict[str, Any], *, rows: torch.Tensor | None, snapshot: bool
    ) -> AttentionCall:
        """What a call `forward(x, attn_bias, cache, positions_L=...)` computes, for `genmotion.cache.AttentionProbe`
        (no RoPE: positions are token indices, those of the call's tokens when it is given none)."""
        bound = {"cache": None, **dict(zip(("x_BLC", "attn_bias", "cache"), args, strict=False)), **kwargs}
        x_BLC, cache, positions = bound["x_BLC"], bound["cache"], bound.get("positions_L")
        if positions is None:
            positions = torch.arange(x_BLC.shape[1], device=x_BLC.device)
        if rows is not None:
            x_BLC = x_BLC.index_select(1, rows.to(x_BLC.device))
            positions = positions.index_select(0, rows.to(positions.device))
        q, k, v = self.qkv(x_BLC)
        hist_k, hist_pos = history(cache, k, (), snapshot)
        return AttentionCall(layer, cache, q, k, v, positions, None, hist_k, hist_pos, self.scale)


class SharedAdaLin(nn.Linear):
    """The single AdaLN projection of shared-AdaLN models: (B, D) -> (B, 1, 6, C)."""

    def forward(self, cond_BD: torch.Tensor) -> torch.Tensor:
        C = self.weight.shape[0] // 6
        return super().forward(cond_BD).view(-1, 1, 6, C)


class AdaLNSelfAttn(nn.Module):
    """Pre-norm block whose LayerNorms (no affine) are scaled/shifted and whose branches are gated by
    six vectors from the class condition: gamma1, gamma2, scale1, scale2, shift1, shift2."""

    def __init__(
        self,
        *,
        width: int,
        num_heads: int,
        mlp_ratio: float,
        shared_aln: bool,
        norm_eps: float,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        attn_l2_norm: bool = True,
    ) -> None:
        super().__init__()
        self.C = width
        self.drop_path: nn.Module = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.attn = SelfAttention(width, num_heads, attn_drop=attn_drop, proj_drop=drop, attn_l2_norm=attn_l2_norm)
        self.ffn = FFN(width, round(width * mlp_ratio), drop=drop)
        self.ln_wo_grad = nn.LayerNorm(width, eps=norm_eps, elementwise_affine=False)
        self.shared_aln = shared_aln
        if shared_aln:
            self.ada_gss = nn.Parameter(torch.randn(1, 1, 6, width) / width**0.5)
        else:
            self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def modulation(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """cond: (B, D), or (B, 1, 6, C) from `SharedAdaLin` -> six (B, 1, C) vectors."""
        if self.shared_aln:
            return (self.ada_gss + cond).unbind(2)
        return self.ada_lin(cond).view(-1, 1, 6, self.C).unbind(2)

    def forward(
        self,
        x_BLC: torch.Tensor,
        cond: torch.Tensor,
        attn_bias: torch.Tensor | None,
        cache: KVCache | HeadGroupCache | None = None,
        *,
        positions_L: torch.Tensor | None = None,
        commit: bool = True,
    ) -> torch.Tensor:
        return self.forward_modulated(
            x_BLC, self.modulation(cond), attn_bias, cache, positions_L=positions_L, commit=commit
        )

    def forward_modulated(
        self,
        x_BLC: torch.Tensor,
        modulation: tuple[torch.Tensor, ...],
        attn_bias: torch.Tensor | None,
        cache: KVCache | HeadGroupCache | None = None,
        *,
        positions_L: torch.Tensor | None = None,
        commit: bool = True,
        neighbourhood: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """The block with its six vectors given (computed once per sample when decoding scale by scale)."""
        gamma1, gamma2, scale1, scale2, shift1, shift2 = modulation
        h = self.ln_wo_grad(x_BLC).mul(scale1.add(1)).add(shift1)
        attn = self.attn(h, attn_bias, cache, positions_L=positions_L, commit=commit, neighbourhood=neighbourhood)
        x_BLC = x_BLC + self.drop_path(attn.mul(gamma1))
        h = self.ln_wo_grad(x_BLC).mul(scale2.add(1)).add(shift2)
        return x_BLC + self.drop_path(self.ffn(h).mul(gamma2))


class AdaLNBeforeHead(nn.Module):
    """LayerNorm (no affine) scaled and shifted by the class condition, before the vocabulary head."""

    def __init__(self, width: int, cond_width: int, norm_eps: float) -> None:
        super().__init__()
        self.C = width
        self.ln_wo_grad = nn.LayerNorm(width, eps=norm_eps, elementwise_affine=False)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(cond_width, 2 * width))

    def modulation(self, cond_BD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift), each (B, 1, C)."""
        scale, shift = self.ada_lin(cond_BD).view(-1, 1, 2, self.C).unbind(2)
        return scale, shift

    def forward(self, x_BLC: torch.Tensor, cond_BD: torch.Tensor) -> torch.Tensor:
        return self.forward_modulated(x_BLC, self.modulation(cond_BD))

    def forward_modulated(self, x_BLC: torch.Tensor, modulation: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        scale, shift = modulation
        return self.ln_wo_grad(x_BLC).mul(scale.add(1)).add(shift)
