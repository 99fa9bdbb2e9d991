"""Convolutional encoder and decoder of the VAR tokenizer (the VQGAN/LDM "vq-f16" layout).

Module and attribute names follow the official code so state dicts load key for key:
`encoder.down.{level}.block.{i}.conv1.weight`, `decoder.up.{level}.upsample.conv.weight`, ...

Axis legend: B batch, C channels, H/W height/width (pixels or latent cells).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genmotion.nn.vqvae_config import VQVAEConfig

__all__ = ["AttnBlock", "Decoder", "Downsample2x", "Encoder", "ResnetBlock", "Upsample2x"]


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=groups, num_channels=channels, eps=1e-6, affine=True)


class Upsample2x(nn.Module):
    """Nearest-neighbour x2, then a 3x3 conv: (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x_BCHW, scale_factor=2, mode="nearest"))


class Downsample2x(nn.Module):
    """Stride-2 3x3 conv after padding one row/column at the bottom/right only: (B, C, H, W) -> (B, C, H/2, W/2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x_BCHW, pad=(0, 1, 0, 1), mode="constant", value=0.0))


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv twice with a residual; a 1x1 `nin_shortcut` when the width changes."""

    def __init__(self, in_channels: int, out_channels: int, *, groups: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = _norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.norm2 = _norm(out_channels, groups)
        self.dropout = nn.Dropout(dropout) if dropout > 1e-6 else nn.Identity()
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.nin_shortcut: nn.Module = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x_BCHW)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.nin_shortcut(x_BCHW) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention over all H*W cells, with a residual."""

    def __init__(self, channels: int, *, groups: int) -> None:
        super().__init__()
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x_BCHW.shape
        qkv = self.qkv(self.norm(x_BCHW)).reshape(B, 3, C, H * W).transpose(2, 3)  # B, 3, HW, C
        q, k, v = qkv.unbind(1)
        h = F.scaled_dot_product_attention(q, k, v)  # B, HW, C; scale C ** -0.5 as in the official code
        return x_BCHW + self.proj_out(h.transpose(1, 2).reshape(B, C, H, W))


def _attn_or_identity(channels: int, groups: int, enabled: bool) -> nn.Module:
    return AttnBlock(channels, groups=groups) if enabled else nn.Identity()


class _Level(nn.Module):
    """One resolution level: `block` (res blocks), `attn` (empty except at the lowest resolution), then
    an optional `downsample` (encoder) or `upsample` (decoder); absent ones hold no weights."""

    def __init__(
        self,
        blocks: list[nn.Module],
        attns: list[nn.Module],
        *,
        downsample: nn.Module | None = None,
        upsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attns)
        self.downsample = downsample
        self.upsample = upsample

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.block):
            h = block(h)
            if len(self.attn) > 0:
                h = self.attn[i](h)
        if self.downsample is not None:
            h = self.downsample(h)
        if self.upsample is not None:
            h = self.upsample(h)
        return h


class _Mid(nn.Module):
    def __init__(self, channels: int, cfg: VQVAEConfig) -> None:
        super().__init__()
        g = cfg.norm_groups
        self.block_1 = ResnetBlock(channels, channels, groups=g, dropout=cfg.dropout)
        self.attn_1 = _attn_or_identity(channels, g, cfg.using_mid_sa)
        self.block_2 = ResnetBlock(channels, channels, groups=g, dropout=cfg.dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


class Encoder(nn.Module):
    """Image (B, 3, H, W) in [-1, 1] -> (B, bottleneck, H/f, W/f) for quant_conv, f = 2 ** (len(channel_mult) - 1)."""

    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        ch, mult, g = cfg.channels, cfg.channel_mult, cfg.norm_groups
        last = len(mult) - 1
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, kernel_size=3, stride=1, padding=1)
        self.down = nn.ModuleList()
        block_in = ch
        for level, m in enumerate(mult):
            block_out = ch * m
            blocks: list[nn.Module] = []
            attns: list[nn.Module] = []
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResnetBlock(block_in, block_out, groups=g, dropout=cfg.dropout))
                block_in = block_out
                if level == last and cfg.using_sa:
                    attns.append(AttnBlock(block_in, groups=g))
            self.down.append(_Level(blocks, attns, downsample=Downsample2x(block_in) if level != last else None))
        self.mid = _Mid(block_in, cfg)
        self.norm_out = _norm(block_in, g)
        self.conv_out = nn.Conv2d(block_in, cfg.bottleneck, kernel_size=3, stride=1, padding=1)

    def forward(self, x_B3HW: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x_B3HW)
        for level in self.down:
            h = level(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))  # B, bottleneck, h, w


class Decoder(nn.Module):
    """(B, bottleneck, h, w) after post_quant_conv -> image (B, 3, h*f, w*f); one more res block per level."""

    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        ch, mult, g = cfg.channels, cfg.channel_mult, cfg.norm_groups
        last = len(mult) - 1
        block_in = ch * mult[last]
        self.conv_in = nn.Conv2d(cfg.bottleneck, block_in, kernel_size=3, stride=1, padding=1)
        self.mid = _Mid(block_in, cfg)
        levels: list[nn.Module] = []
        for level in reversed(range(len(mult))):
            block_out = ch * mult[level]
            blocks: list[nn.Module] = []
            attns: list[nn.Module] = []
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResnetBlock(block_in, block_out, groups=g, dropout=cfg.dropout))
                block_in = block_out
                if level == last and cfg.using_sa:
                    attns.append(AttnBlock(block_in, groups=g))
            up = _Level(blocks, attns, upsample=Upsample2x(block_in) if level != 0 else None)
            levels.insert(0, up)  # up[0] is the finest level, as in the official code
        self.up = nn.ModuleList(levels)
        self.norm_out = _norm(block_in, g)
        self.conv_out = nn.Conv2d(block_in, cfg.in_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, z_BChw: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z_BChw))
        for level in reversed(self.up):
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))  # B, 3, H, W
