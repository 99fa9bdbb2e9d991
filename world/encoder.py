"""The frozen patch encoder of VFMF: a ViT in DINOv2's parameter layout (so a DINOv2 ViT-B/14-reg
checkpoint loads key for key), returning several intermediate block outputs concatenated per patch token,
and the MaskFeat-style self-supervised pre-training head the toy encoder is trained with.

Axes: B images, H x W pixels, h x w patch grid, N = h * w patch tokens, R register tokens, D width,
F = D * len(layers) feature channels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from genmotion.errors import InputError
from genmotion.nn.attention import attend
from genmotion.world.config import EncoderConfig

__all__ = ["MaskFeatHead", "PatchEncoder", "load_dinov2", "maskfeat_targets"]


class _PatchEmbed(nn.Module):
    def __init__(self, patch: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, width, patch, patch)

    def forward(self, x_B3HW: torch.Tensor) -> torch.Tensor:
        return self.proj(x_B3HW).flatten(2).transpose(1, 2)  # (B, N, D)


class _Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x_BLD: torch.Tensor) -> torch.Tensor:
        B, L, D = x_BLD.shape
        q, k, v = self.qkv(x_BLD).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(attend(q, k, v).transpose(1, 2).reshape(B, L, D))


class _Mlp(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, hidden), nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _LayerScale(nn.Module):
    def __init__(self, width: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((width,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _Block(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width, eps=1e-6), nn.LayerNorm(width, eps=1e-6)
        self.attn, self.mlp = _Attention(width, heads), _Mlp(width, int(width * mlp_ratio))
        self.ls1, self.ls2 = _LayerScale(width, 1.0), _LayerScale(width, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEncoder(nn.Module):
    """ViT with DINOv2's names: cls_token, pos_embed (1, 1 + pos_grid^2, D), register_tokens, mask_token,
    patch_embed.proj, blocks.i.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2, ls2.gamma}, norm."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        c = self.config = config
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.width))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + c.pos_grid**2, c.width) * 0.02)
        self.register_tokens = nn.Parameter(torch.zeros(1, c.num_registers, c.width)) if c.num_registers else None
        self.mask_token = nn.Parameter(torch.zeros(1, c.width))
        self.patch_embed = _PatchEmbed(c.patch_size, c.width)
        self.blocks = nn.ModuleList(_Block(c.width, c.heads, c.mlp_ratio) for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.width, eps=1e-6)

    def _positions(self, h: int, w: int) -> torch.Tensor:
        """(1, 1 + h * w, D): the stored table, patch part resized to the h x w grid (bicubic)."""
        g = self.config.pos_grid
        if (h, w) == (g, g):
            return self.pos_embed
        grid = self.pos_embed[:, 1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid.float(), size=(h, w), mode="bicubic", align_corners=False).to(grid.dtype)
        return torch.cat([self.pos_embed[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)

    def tokens(self, images_B3HW: torch.Tensor, mask_BN: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Normed patch tokens (B, N, D) after each block in `config.layers`; `mask_BN` True replaces a
        patch by the mask token (pre-training)."""
        B, _, H, W = images_B3HW.shape
        p = self.config.patch_size
        x = self.patch_embed(images_B3HW)
        if mask_BN is not None:
            x = torch.where(mask_BN[..., None], self.mask_token.to(x.dtype)[None], x)
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1) + self._positions(H // p, W // p)
        skip = 1
        if self.register_tokens is not None:
            x = torch.cat([x[:, :1], self.register_tokens.expand(B, -1, -1), x[:, 1:]], dim=1)
            skip += self.register_tokens.shape[1]
        out, wanted = [], set(self.config.layers)
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in wanted:
                out.append(self.norm(x)[:, skip:])
        return out

    def forward(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> features (B, h, w, F): the chosen layers concatenated per patch."""
        B, _, H, W = images_B3HW.shape
        p = self.config.patch_size
        return torch.cat(self.tokens(images_B3HW), dim=-1).view(B, H // p, W // p, -1)


def maskfeat_targets(images_B3HW: torch.Tensor, patch: int) -> torch.Tensor:
    """MaskFeat-style targets per patch (B, N, 3 p^2 + 4 * 8): pixels normalised within the patch, and
    8-bin gradient-orientation histograms (HOG-like, magnitude weighted, L2-normalised) of its 4 quarters."""
    B, _, H, W = images_B3HW.shape
    x = images_B3HW.float()
    pix = F.unfold(x, patch, stride=patch).transpose(1, 2)  # (B, N, 3 p^2)
    pix = (pix - pix.mean(-1, keepdim=True)) / (pix.var(-1, keepdim=True) + 1e-4).sqrt()
    gray = x.mean(1, keepdim=True)
    gx = F.pad(gray[..., :, 2:] - gray[..., :, :-2], (1, 1, 0, 0))
    gy = F.pad(gray[..., 2:, :] - gray[..., :-2, :], (0, 0, 1, 1))
    mag, ang = (gx.square() + gy.square()).sqrt(), torch.atan2(gy, gx) % math.pi
    bins = (ang / math.pi * 8).long().clamp(max=7)
    hist = torch.zeros(B, 8, H, W, dtype=x.dtype, device=x.device).scatter_(1, bins, mag)
    cells = F.avg_pool2d(hist, patch // 2)  # (B, 8, 2h, 2w)
    h, w = H // patch, W // patch
    cells = cells.view(B, 8, h, 2, w, 2).permute(0, 2, 4, 3, 5, 1).reshape(B, h * w, 32)
    cells = cells / (cells.norm(dim=-1, keepdim=True) + 1e-4)
    return torch.cat([pix, cells], dim=-1)


class MaskFeatHead(nn.Module):
    """Encoder + linear predictor of `maskfeat_targets` on masked patches (pre-training only)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.encoder = PatchEncoder(config)
        self.predict = nn.Linear(config.width, 3 * config.patch_size**2 + 32)

    def loss(self, images_B3HW: torch.Tensor, mask_BN: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the predicted targets on the masked patches."""
        last = self.encoder.tokens(images_B3HW, mask_BN)[-1]
        target = maskfeat_targets(images_B3HW, self.encoder.config.patch_size)
        err = (self.predict(last) - target).square().mean(-1)
        return (err * mask_BN).sum() / mask_BN.sum().clamp(min=1)


def load_dinov2(encoder: PatchEncoder, state: Mapping[str, torch.Tensor]) -> PatchEncoder:
    """Load a DINOv2-layout state dict into `encoder`, key for key and shape for shape (an `InputError`
    names the first mismatch). Works on meta-device modules with `assign=True` semantics."""
    own = encoder.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise InputError(
            "the checkpoint does not have the DINOv2 layout of this encoder",
            why=f"missing {missing[:3]}, unexpected {extra[:3]}",
            fix="pass a DINOv2 ViT state dict matching the encoder config (e.g. dinov2_vitb14_reg4_pretrain.pth)",
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise InputError(f"DINOv2 weight {k} is shaped {tuple(v.shape)}, the encoder needs {tuple(own[k].shape)}")
    encoder.load_state_dict(dict(state), assign=True)
    return encoder
