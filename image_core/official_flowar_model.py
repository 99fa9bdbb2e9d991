"""The official FlowAR network (Ren et al., 2024), module for module and name for name, so the published FlowAR-S/L/H
files load key for key: an encoder and a decoder stack of RMSNorm / AdaLN blocks with 2-D rotary attention per
scale and a GELU-gated MLP, and `flownet`, a small transformer over the tokens of one scale that predicts the
flow velocity. This suite's own FlowAR (`flowar_model`) runs VAR's blocks instead, with either a per-token head or
this file's `FlowNet` (`flow_head: scale`); the rest of this file exists to run the official weights.

Axis legend: B batch, L tokens of all scales, n tokens of one scale, C width, W flow-head width, Cz latent
channels, H heads, d head dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from genmotion.image_core.config import scale_slices
from genmotion.image_core.flowar_config import FLOWNET_HEAD_DIM, check_doubling

__all__ = ["FlowNet", "KVPair", "OfficialFlowAR", "OfficialFlowARConfig", "rope_2d"]

_TIME_FEATURES = 256


@dataclass(frozen=True, kw_only=True)
class OfficialFlowARConfig:
    """Sizes of the official model: FlowAR-S is width 768, depth 6 (+6), 12 heads, flow head 2 x 1024; -L 1024,
    8 (+8), 16, 12 x 1024 with cross-attention; -H 1536, 15 (+15), 16, 12 x 1536 with cross-attention."""

    width: int = 768
    depth: int = 6  # blocks of the encoder, and as many of the decoder
    num_heads: int = 12
    head_width: int = 1024  # official diffloss_w
    head_depth: int = 2  # official diffloss_d
    cross: bool = False  # flow-head blocks with cross-attention to z (FlowAR-L and -H)
    latent_channels: int = 16
    patch_nums: tuple[int, ...] = (1, 2, 4, 8, 16)
    num_classes: int = 1000  # the class embedding holds one more row: the null class
    rope_grid: int = 16  # rotary positions of every scale are spread over a grid of this side

    def __post_init__(self) -> None:
        check_doubling(self.patch_nums)
        if self.width % self.num_heads or (self.width // self.num_heads) % 4:
            raise ValueError(f"width {self.width} must split into {self.num_heads} heads of a multiple of 4")
        if self.head_width % FLOWNET_HEAD_DIM:
            raise ValueError(f"head_width {self.head_width} must be a multiple of {FLOWNET_HEAD_DIM}")

    @property
    def num_tokens(self) -> int:
        return sum(p * p for p in self.patch_nums)

    @property
    def scale_slices(self) -> tuple[tuple[int, int], ...]:
        return scale_slices(self.patch_nums)


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    out = (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)).type_as(x)
    return out if weight is None else out * weight


class RMSNorm(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight)


class RopeFrequencies(nn.Module):
    """The frequency buffer of one attention (`rope.freqs`, d/4 values for head dim d)."""

    freqs: torch.Tensor

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        dim = head_dim // 2
        self.register_buffer("freqs", 1.0 / (10000 ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim)))


def rope_2d(x: torch.Tensor, freqs: torch.Tensor, grid: int) -> torch.Tensor:
    """Rotate x (B, H, n, d), n = side * side tokens in raster order: the first d/2 features by the row, the rest
    by the column, at positions i * grid / side; pairs (2j, 2j + 1) rotate together."""
    n, d = x.shape[-2], x.shape[-1]
    side = math.isqrt(n)
    t = torch.arange(side, device=x.device, dtype=torch.float32) / side * grid
    f = torch.outer(t, freqs.float()).repeat_interleave(2, dim=-1)  # side, d/2
    angle = torch.cat((f[:, None, :].expand(side, side, -1), f[None, :, :].expand(side, side, -1)), dim=-1)
    angle = angle.reshape(n, d)
    rotated = torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).flatten(-2)
    return x * angle.cos().to(x.dtype) + rotated * angle.sin().to(x.dtype)


class GatedMLP(nn.Module):
    """fc2(GELU(fc1_g x) * fc1_x x), hidden int(8/3 width) (timm's SwiGLU given GELU, as FlowAR builds it)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        hidden = int(width * 4 * 2 / 3.0)
        self.fc1_g, self.fc1_x, self.fc2 = nn.Linear(width, hidden), nn.Linear(width, hidden), nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1_g(x)) * self.fc1_x(x))


@dataclass
class KVPair:
    """One attention's cached keys (after RoPE) and values, (B, H, L so far, d); None before the first scale."""

    k: torch.Tensor | None = None
    v: torch.Tensor | None = None


class Attention(nn.Module):
    """Self-attention with 2-D RoPE applied per scale. `sides`: the scales x holds, in order."""

    def __init__(self, width: int, heads: int, *, qkv_bias: bool, grid: int) -> None:
        super().__init__()
        self.heads, self.grid = heads, grid
        self.qkv = nn.Linear(width, 3 * width, bias=qkv_bias)
        self.proj = nn.Linear(width, width)
        self.rope = RopeFrequencies(width // heads)

    def _rope(self, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        parts = x.split(sizes, dim=2)
        return torch.cat([rope_2d(p, self.rope.freqs, self.grid) for p in parts], dim=2)

    def forward(
        self, x: torch.Tensor, sizes: list[int], mask: torch.Tensor | None = None, cache: KVPair | None = None
    ) -> torch.Tensor:
        """x (B, n, C) -> (B, n, C); `sizes` the token counts of the scales in x; with `cache`, x attends to the
        cached tokens too and is appended to them."""
        B, n, C = x.shape
        q, k, v = self.qkv(x).view(B, n, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self._rope(q, sizes), self._rope(k, sizes)
        if cache is not None:
            if cache.k is not None and cache.v is not None:
                k, v = torch.cat((cache.k, k), dim=2), torch.cat((cache.v, v), dim=2)
            cache.k, cache.v = k, v
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(B, n, C))


class Block(nn.Module):
    """x += g1 attn(rms(x) (1 + s1) + b1); x += g2 mlp(rms(x) (1 + s2) + b2); six vectors from the class."""

    def __init__(self, width: int, heads: int, grid: int) -> None:
        super().__init__()
        self.width = width
        self.attn = Attention(width, heads, qkv_bias=True, grid=grid)
        self.mlp = GatedMLP(width)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def forward(
        self, x: torch.Tensor, cond_BC: torch.Tensor, sizes: list[int], mask: torch.Tensor | None, cache: KVPair | None
    ) -> torch.Tensor:
        g1, g2, s1, s2, b1, b2 = self.ada_lin(cond_BC).view(-1, 1, 6, self.width).unbind(2)
        x = x + self.attn(rms_norm(x).mul(s1 + 1).add(b1), sizes, mask, cache).mul(g1)
        return x + self.mlp(rms_norm(x).mul(s2 + 1).add(b2)).mul(g2)


class CrossAttention(nn.Module):
    """Queries from x (B, n, W), keys and values from the condition (B, n, C), both rotated (one scale)."""

    def __init__(self, width: int, cond_width: int, heads: int, grid: int) -> None:
        super().__init__()
        self.heads, self.grid = heads, grid
        self.q, self.kv = nn.Linear(width, width, bias=False), nn.Linear(cond_width, 2 * width, bias=False)
        self.proj = nn.Linear(width, width)
        self.rope = RopeFrequencies(width // heads)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        B, n, W = x.shape
        q = self.q(x).view(B, n, self.heads, W // self.heads).transpose(1, 2)
        k, v = self.kv(cond).view(B, n, 2, self.heads, W // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = rope_2d(q, self.rope.freqs, self.grid), rope_2d(k, self.rope.freqs, self.grid)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, n, W))


class HeadBlock(nn.Module):
    """A flow-head block. Without `cross` (FlowAR-S): six vectors per token from SiLU(t + c). With it (L, H):
    three from SiLU(t) for the attention, cross-attention to the condition, three per token from SiLU(c + t)."""

    def __init__(self, width: int, cond_width: int, *, cross: bool, grid: int) -> None:
        super().__init__()
        heads, self.width, self.cross = width // FLOWNET_HEAD_DIM, width, cross
        self.attn = Attention(width, heads, qkv_bias=False, grid=grid)
        self.mlp = GatedMLP(width)
        if cross:
            self.crossattn = CrossAttention(width, cond_width, heads, grid)
            self.norm2_1, self.norm2_2 = RMSNorm(width), RMSNorm(cond_width)
            self.ada_lin_attn, self.ada_lin_mlp = nn.Linear(width, 3 * width), nn.Linear(width, 3 * width)
        else:
            self.ada_lin = nn.Linear(width, 6 * width)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        B, n, _ = x.shape
        sizes = [n]
        if not self.cross:
            g1, g2, s1, s2, b1, b2 = self.ada_lin(F.silu(t + c)).view(B, n, 6, self.width).unbind(2)
            x = x + self.attn(rms_norm(x).mul(s1 + 1).add(b1), sizes).mul(g1)
            return x + self.mlp(rms_norm(x).mul(s2 + 1).add(b2)).mul(g2)
        g1, s1, b1 = self.ada_lin_attn(F.silu(t)).view(B, 1, 3, self.width).unbind(2)
        g2, s2, b2 = self.ada_lin_mlp(F.silu(c + t)).view(B, n, 3, self.width).unbind(2)
        x = x + self.attn(rms_norm(x).mul(s1 + 1).add(b1), sizes).mul(g1)
        x = x + self.crossattn(self.norm2_1(x), self.norm2_2(cond))
        return x + self.mlp(rms_norm(x).mul(s2 + 1).add(b2)).mul(g2)


class TimeEmbedding(nn.Module):
    """Integer times (t * 1000, floored) -> cos/sin features (256) -> MLP (`mlp.0`, `mlp.2`)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(_TIME_FEATURES, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t_B: torch.Tensor) -> torch.Tensor:
        half = _TIME_FEATURES // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t_B.device) / half)
        args = (t_B * 1000).long()[:, None].float() * freqs[None]
        return self.mlp(torch.cat((args.cos(), args.sin()), dim=-1).to(cast(nn.Linear, self.mlp[0]).weight.dtype))


class FinalLayer(nn.Module):
    def __init__(self, width: int, out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, out)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(rms_norm(x) * (1 + scale) + shift)


class FlowNet(nn.Module):
    """forward(x_t (B, n, Cz), t (B,), z (B, n, C)) -> velocity (B, n, Cz) of x_t = (1 - t) x + t eps.

    A transformer over the n tokens of one scale (heads of 64, 2-D RoPE over a `grid`-side square), each token
    modulated by its own z (spatial AdaLN): the tokens of a scale are denoised together, not one by one.
    width: the head's width (official diffloss_w); cond_width: the width C of z; depth: blocks (diffloss_d).
    """

    def __init__(
        self, *, width: int, cond_width: int, latent_channels: int, depth: int, grid: int, cross: bool = False
    ) -> None:
        super().__init__()
        if width % FLOWNET_HEAD_DIM:
            raise ValueError(f"flow head width {width} must be a multiple of {FLOWNET_HEAD_DIM} (its head dim)")
        W, C, Cz = width, cond_width, latent_channels
        self.time_embed = TimeEmbedding(W)
        self.cond_embed, self.input_proj = nn.Linear(C, W), nn.Linear(Cz, W)
        self.res_blocks = nn.ModuleList(HeadBlock(W, C, cross=cross, grid=grid) for _ in range(depth))
        self.final_layer = FinalLayer(W, Cz)

    def zero_init(self) -> None:
        """AdaLN-zero (for training from scratch): every block starts as the identity and the velocity at 0."""
        with torch.no_grad():
            for block in self.res_blocks:
                for name in ("ada_lin", "ada_lin_attn", "ada_lin_mlp"):
                    layer = getattr(block, name, None)
                    if isinstance(layer, nn.Linear):
                        layer.weight.zero_()
                        if layer.bias is not None:
                            layer.bias.zero_()
            final = cast(FinalLayer, self.final_layer)
            for layer in (cast(nn.Linear, final.adaLN_modulation[-1]), final.linear):
                layer.weight.zero_()
                layer.bias.zero_()

    def forward(self, x: torch.Tensor, t_B: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h, t, c = self.input_proj(x), self.time_embed(t_B).unsqueeze(1), self.cond_embed(z)
        for block in self.res_blocks:
            h = block(h, t, c, z)
        return cast(torch.Tensor, self.final_layer(h, c + t))


class OfficialFlowAR(nn.Module):
    """The official `FlowAR` module (buffer_size 0): `forward` is the teacher-forced pass (z of every token);
    `forward_scale` runs one scale against the per-attention `KVPair` caches, as the official sampler does."""

    mask: torch.Tensor

    def __init__(self, config: OfficialFlowARConfig) -> None:
        super().__init__()
        self.config = config
        C, L, g = config.width, config.num_tokens, config.rope_grid
        self.class_emb = nn.Embedding(config.num_classes + 1, C)
        self.z_proj, self.z_proj_ln = nn.Linear(config.latent_channels, C), RMSNorm(C)
        self.encoder_pos_embed_learned = nn.Parameter(torch.zeros(1, L, C))
        self.encoder_blocks = nn.ModuleList(Block(C, config.num_heads, g) for _ in range(config.depth))
        self.encoder_norm = RMSNorm(C)
        self.decoder_embed = nn.Linear(C, C)
        self.decoder_pos_embed_learned = nn.Parameter(torch.zeros(1, L, C))
        self.decoder_blocks = nn.ModuleList(Block(C, config.num_heads, g) for _ in range(config.depth))
        self.decoder_norm = RMSNorm(C)
        self.diffusion_pos_embed_learned = nn.Parameter(torch.zeros(1, L, C))
        self.flownet = FlowNet(
            width=config.head_width, cond_width=C, latent_channels=config.latent_channels, depth=config.head_depth,
            grid=g, cross=config.cross,
        )  # fmt: skip
        self.register_buffer("mask", scale_causal_mask(config.patch_nums))

    def blocks(self) -> list[Block]:
        return [cast(Block, b) for b in (*self.encoder_blocks, *self.decoder_blocks)]

    def new_cache(self) -> list[KVPair]:
        return [KVPair() for _ in self.blocks()]

    def _run(
        self, x: torch.Tensor, cond: torch.Tensor, span: tuple[int, int], sizes: list[int],
        mask: torch.Tensor | None, cache: list[KVPair] | None,
    ) -> torch.Tensor:  # fmt: skip
        """Encoder then decoder over the tokens `span` of the sequence: (B, n, C) -> z (B, n, C)."""
        b, e = span
        caches: list[KVPair | None] = list(cache) if cache is not None else [None] * len(self.blocks())
        x = self.z_proj_ln(x + self.encoder_pos_embed_learned[:, b:e])
        for block, kv in zip(self.encoder_blocks, caches[: self.config.depth], strict=True):
            x = block(x, cond, sizes, mask, kv)
        x = self.decoder_embed(self.encoder_norm(x)) + self.decoder_pos_embed_learned[:, b:e]
        for block, kv in zip(self.decoder_blocks, caches[self.config.depth :], strict=True):
            x = block(x, cond, sizes, mask, kv)
        return self.decoder_norm(x) + self.diffusion_pos_embed_learned[:, b:e]

    def forward(self, label_B: torch.Tensor, inputs_BLCz: torch.Tensor) -> torch.Tensor:
        """label (B,) (num_classes = null), the latent inputs of scales 1.. (B, L - 1, Cz) -> z (B, L, C)."""
        cond = self.class_emb(label_B)
        x = torch.cat((cond.unsqueeze(1), self.z_proj(inputs_BLCz)), dim=1)
        sizes = [p * p for p in self.config.patch_nums]
        return self._run(x, cond, (0, self.config.num_tokens), sizes, self.mask, None)

    def forward_scale(
        self, scale_index: int, x_BnCz: torch.Tensor | None, cond_BC: torch.Tensor, cache: list[KVPair]
    ) -> torch.Tensor:
        """One scale: its latent input (B, n, Cz) (None at scale 0: the class token) -> z (B, n, C)."""
        x = cond_BC.unsqueeze(1) if x_BnCz is None else self.z_proj(x_BnCz)
        span = self.config.scale_slices[scale_index]
        return self._run(x, cond_BC, span, [span[1] - span[0]], None, cache)


def scale_causal_mask(patch_nums: tuple[int, ...]) -> torch.Tensor:
    """(1, 1, L, L) additive mask: a token sees every token of its own scale and of the coarser ones."""
    level = torch.tensor([i for i, p in enumerate(patch_nums) for _ in range(p * p)])
    return torch.where(level[None, :] <= level[:, None], 0.0, -math.inf)[None, None]
