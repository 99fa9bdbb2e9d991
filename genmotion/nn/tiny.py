"""Tiny generic causal transformers for tests, benchmarks and toy recipes.

`TinyTransformer` is a pure function of its inputs: `forward(x_BLC, positions, cache=None, mask=...)`.
`TinyTokenModel` (token ids -> logits) and `TinyFlowModel` (noisy latents + flow time -> velocity)
wrap it for the two AR loops. Axes: B batch, L tokens, C width, V vocabulary, E condition width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

from genmotion.errors import UsageError
from genmotion.kv.layered import LayeredKVCache
from genmotion.nn.blocks import AdaLNBlock, ConditionMemo, PreNormBlock, TokenConditions
from genmotion.nn.masks import MaskArg, positional_causal_args, sdpa_mask_args
from genmotion.nn.rope import Rotary

__all__ = [
    "TinyFlowModel",
    "TinyFlowModelConfig",
    "TinyTokenModel",
    "TinyTransformer",
    "TinyTransformerConfig",
    "flow_inputs",
    "timestep_embedding",
]


@dataclass(frozen=True, kw_only=True)
class TinyTransformerConfig:
    """Architecture only. `cond_dim > 0` switches to AdaLN blocks conditioned on a (B, E) or (B, L, E) vector."""

    dim: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: float = 4.0
    cond_dim: int = 0
    rope_base: float = 10000.0
    backend: str = "sdpa"

    def __post_init__(self) -> None:
        if self.dim % self.heads or (self.dim // self.heads) % 2:
            raise ValueError(f"dim {self.dim} must split into {self.heads} heads of even size (RoPE rotates pairs)")

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


class TinyTransformer(nn.Module):
    """Pre-norm (or AdaLN) transformer with 1-D RoPE over time positions and an optional KV cache."""

    def __init__(self, config: TinyTransformerConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.rotary = Rotary(c.head_dim, base=c.rope_base)
        blocks: list[nn.Module] = [
            AdaLNBlock(c.dim, c.heads, c.cond_dim, mlp_ratio=c.mlp_ratio, backend=c.backend)
            if c.cond_dim
            else PreNormBlock(c.dim, c.heads, mlp_ratio=c.mlp_ratio, backend=c.backend)
            for _ in range(c.depth)
        ]
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(c.dim)

    def new_cache(self, batch: int, capacity: int, **kwargs: object) -> LayeredKVCache:
        """A cache shaped for this model; `kwargs` go to `KVCache` (ring, sink, dtype, device)."""
        p = next(self.parameters())
        kwargs = {"dtype": p.dtype, "device": p.device, **kwargs}
        return LayeredKVCache.allocate(
            len(self.blocks), batch, self.config.heads, capacity, self.config.head_dim, **kwargs
        )

    def forward(
        self,
        x_BLC: torch.Tensor,
        positions: torch.Tensor,
        cache: LayeredKVCache | None = None,
        mask: MaskArg = "causal",
        cond: torch.Tensor | TokenConditions | None = None,
    ) -> torch.Tensor:
        """x (B, L, C), integer time positions (L) or (B, L) -> (B, L, C).

        With a cache, layer i attends to its cached entries followed by the new ones, and appends them
        when `cache.commit`; a tensor mask is then (L, cache length + L). Without a cache the mask is
        resolved once for all layers.
        """
        if cache is not None and len(cache) != len(self.blocks):
            raise UsageError(f"cache has {len(cache)} layers, the model {len(self.blocks)}", fix="use model.new_cache")
        is_causal = False
        if cache is None and isinstance(mask, str):
            pos = positions if positions.dim() == 1 else positions.unsqueeze(1)  # (L) or (B, 1, L)
            mask, is_causal = positional_causal_args(pos, pos)
        elif isinstance(mask, torch.Tensor):
            mask, is_causal = sdpa_mask_args(mask)
        for i, block in enumerate(self.blocks):
            x_BLC = block(
                x_BLC,
                positions,
                self.rotary,
                cond=cond,
                cache=None if cache is None else cache[i],
                commit=True if cache is None else cache.commit,
                mask=mask,
                is_causal=is_causal,
            )
        return self.norm(x_BLC)


class TinyTokenModel(nn.Module):
    """Token ids (B, L) -> logits (B, L, V); the callable the discrete AR loop drives."""

    def __init__(self, vocab_size: int, config: TinyTransformerConfig) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, config.dim)
        self.backbone = TinyTransformer(config)
        self.head = nn.Linear(config.dim, vocab_size)

    def new_cache(self, batch: int, capacity: int, **kwargs: object) -> LayeredKVCache:
        return self.backbone.new_cache(batch, capacity, **kwargs)

    def forward(
        self,
        tokens_BL: torch.Tensor,
        positions: torch.Tensor,
        cache: LayeredKVCache | None = None,
        mask: MaskArg = "causal",
    ) -> torch.Tensor:
        return self.head(self.backbone(self.embed(tokens_BL), positions, cache=cache, mask=mask))


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of flow time t in [0, 1], (...) -> (..., dim) float32 (DiT's embedding of 1000 t); callers
    cast to their compute dtype."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.to(torch.float32).unsqueeze(-1) * freqs
    return torch.cat([args.cos(), args.sin()], dim=-1)


MAX_DISTINCT_TIMES = 4  # more distinct flow times in one call (training): one AdaLN row per token instead


def flow_inputs(
    x_BLC: torch.Tensor,
    t_BL: torch.Tensor,
    *,
    proj_in: nn.Module,
    spatial_NW: torch.Tensor,
    time_mlp: nn.Module,
    cond_dim: int,
    extra_BE: torch.Tensor | None = None,
    memo: ConditionMemo | None = None,
) -> tuple[torch.Tensor, torch.Tensor | TokenConditions]:
    """The front of a frame-token flow model: tokens (B, L, C) of whole frames of N -> hidden (B, L, W) =
    proj_in(x) + the learned place embedding `spatial_NW` (N, W); and the AdaLN condition of flow times t
    (B, L) (+ `extra_BE`, e.g. text): `TokenConditions` with one row per distinct time when there are few
    (sampling: one or two), else per token (B, L, E). With a `memo` (sampling with a fixed `extra_BE`, no
    autograd) each time's row and its blocks' modulations are made once (see `ConditionMemo`)."""
    B, L = x_BLC.shape[:2]
    N = spatial_NW.shape[0]
    if L % N:
        raise UsageError(f"{L} tokens are not whole frames of {N}", fix="pass whole frames")
    h = proj_in(x_BLC)
    h = (h.view(B, L // N, N, -1) + spatial_NW).view(B, L, -1)  # the place embedding broadcast over frames
    values, index = torch.unique(t_BL, return_inverse=True)
    if values.numel() > MAX_DISTINCT_TIMES:
        cond = time_mlp(timestep_embedding(t_BL, cond_dim).to(h.dtype))  # (B, L, E)
        return h, cond if extra_BE is None else cond + extra_BE[:, None]

    def row(value: torch.Tensor) -> torch.Tensor:  # each row from the same shapes, whatever else the call holds
        r = time_mlp(timestep_embedding(value.reshape(1), cond_dim).to(h.dtype)).expand(B, -1)  # (B, E)
        return r if extra_BE is None else r + extra_BE

    if memo is None or torch.is_grad_enabled():
        return h, TokenConditions(tuple(row(v) for v in values), None if len(values) == 1 else index)
    keys = tuple(("time", B, float(v), h.dtype, h.device) for v in values.tolist())  # a moved model: new entries
    rows = tuple(memo.get(key, partial(row, v)) for key, v in zip(keys, values, strict=True))
    return h, TokenConditions(rows, None if len(rows) == 1 else index, keys=keys, memo=memo)


@dataclass(frozen=True, kw_only=True)
class TinyFlowModelConfig:
    """A velocity model over frames of `tokens_per_frame` latent tokens with `channels` channels each."""

    channels: int = 4
    tokens_per_frame: int = 4
    transformer: TinyTransformerConfig = field(default_factory=lambda: TinyTransformerConfig(cond_dim=32))


class TinyFlowModel(nn.Module):
    """(x (B, L, channels), flow time t (B, L), frame positions (L)) -> velocity (B, L, channels).

    Positions are frame indices, so "causal" is block-causal by frame; tokens get a learned embedding
    of their place inside the frame (inputs always start at a frame boundary).
    """

    def __init__(self, config: TinyFlowModelConfig) -> None:
        super().__init__()
        tc = config.transformer
        if tc.cond_dim <= 0:
            raise UsageError("TinyFlowModel needs AdaLN blocks", fix="set transformer.cond_dim > 0")
        self.config = config
        self.proj_in = nn.Linear(config.channels, tc.dim)
        self.spatial = nn.Parameter(torch.randn(config.tokens_per_frame, tc.dim) * 0.02)
        self.time_mlp = nn.Sequential(
            nn.Linear(tc.cond_dim, tc.cond_dim), nn.SiLU(), nn.Linear(tc.cond_dim, tc.cond_dim)
        )
        self.backbone = TinyTransformer(tc)
        self.proj_out = nn.Linear(tc.dim, config.channels)

    def new_cache(self, batch: int, capacity: int, **kwargs: object) -> LayeredKVCache:
        return self.backbone.new_cache(batch, capacity, **kwargs)

    def forward(
        self,
        x_BLC: torch.Tensor,
        t_BL: torch.Tensor,
        positions_L: torch.Tensor,
        *,
        cache: LayeredKVCache | None = None,
        mask: MaskArg = "causal",
    ) -> torch.Tensor:
        h, cond = flow_inputs(
            x_BLC,
            t_BL,
            proj_in=self.proj_in,
            spatial_NW=self.spatial,
            time_mlp=self.time_mlp,
            cond_dim=self.config.transformer.cond_dim,
        )
        return self.proj_out(self.backbone(h, positions_L, cache=cache, mask=mask, cond=cond))
