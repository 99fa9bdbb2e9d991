"""FlexVAR: next-scale prediction where every scale is the whole image at its size (Jiao et al., 2025).

Built from VAR's blocks (`var_blocks`), with what FlexVAR changes: no level embedding; one learnable 2-D
position map (1, C, P, P), sin/cos-initialised and area-resized to each scale's h x w, so any schedule of
scale sizes (any number of steps, any final size) has positions; the block-causal mask is built for the
schedule of each call. A pure function like `VAR`: `forward(label, x, sizes)` is the teacher-forced training
forward over one schedule, `forward_scale(x, conditions, cache)` one scale against a KV cache.

Axis legend: B batch, L tokens of all scales of a schedule, l tokens of one scale, C width, D condition width
(= C), Cv tokenizer latent channels, V vocabulary, P position-map side, h/w one scale's side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from genmotion.cache import LayeredKVCache
from genmotion.image_core.flex_config import FlexVARConfig
from genmotion.image_core.var_blocks import AdaLNBeforeHead, AdaLNSelfAttn
from genmotion.image_core.var_model import ClassConditions, block_causal_bias

__all__ = ["FlexVAR", "sincos_position_map"]


def sincos_position_map(width: int, side: int) -> torch.Tensor:
    """(1, C, side, side): half the channels sin/cos of the row, half of the column, at C/4 frequencies each."""
    quarter = max(width // 4, 1)
    freq = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    grid = torch.arange(side, dtype=torch.float64)[:, None] * freq[None] * (16 / side)  # side, C/4
    row = torch.cat((grid.sin(), grid.cos()), 1)  # side, C/2
    pos = torch.zeros(width, side, side, dtype=torch.float64)
    half = min(row.shape[1], width // 2)
    pos[:half] = row[:, :half].T[:, :, None]  # varies along y
    pos[half : 2 * half] = row[:, :half].T[:, None, :]  # varies along x
    return pos.float().unsqueeze(0)


class FlexVAR(nn.Module):
    """Flexible next-scale transformer; holds no tokenizer (inputs are code maps, outputs logits over codes)."""

    def __init__(self, config: FlexVARConfig) -> None:
        super().__init__()
        self.config = cfg = config
        C = self.C = cfg.width
        self.Cvae, self.V, self.num_classes = cfg.latent_channels, cfg.vocab_size, cfg.num_classes
        self.word_embed = nn.Linear(self.Cvae, C)
        self.class_emb = nn.Embedding(self.num_classes + 1, C)  # the last row is the null class
        self.pos_start = nn.Parameter(torch.zeros(1, 1, C))
        self.pos_map = nn.Parameter(sincos_position_map(C, cfg.position_size) * math.sqrt(1 / C / 3))
        rates = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(
            AdaLNSelfAttn(
                width=C,
                num_heads=cfg.num_heads,
                mlp_ratio=cfg.mlp_ratio,
                shared_aln=False,
                norm_eps=cfg.norm_eps,
                drop=cfg.drop_rate,
                attn_drop=cfg.attn_drop_rate,
                drop_path=rates[i],
                attn_l2_norm=cfg.attn_l2_norm,
            )
            for i in range(cfg.depth)
        )
        self.head_nm = AdaLNBeforeHead(C, C, cfg.norm_eps)
        self.head = nn.Linear(C, self.V)

    def typed_blocks(self) -> list[AdaLNSelfAttn]:
        return [cast(AdaLNSelfAttn, b) for b in self.blocks]

    # ---- positions and inputs ------------------------------------------------------------------------
    def positions(self, height: int, width: int) -> torch.Tensor:
        """(1, h*w, C): the position map area-resized to h x w (any size, also beyond P)."""
        pos = F.interpolate(self.pos_map, size=(height, width), mode="area")  # 1, C, h, w
        return pos.flatten(2).transpose(1, 2)

    def start_tokens(self, cond_BD: torch.Tensor) -> torch.Tensor:
        """Input of the 1 x 1 first scale: (B, 1, C) = class embedding + pos_start + the 1 x 1 position."""
        return cond_BD.unsqueeze(1) + self.pos_start + self.positions(1, 1)

    def scale_tokens(self, x_BCvhw: torch.Tensor) -> torch.Tensor:
        """Input of a later scale from the previous scale's codes upsampled to its size: (B, Cv, h, w) -> (B, l, C)."""
        h, w = x_BCvhw.shape[-2:]
        return self.word_embed(x_BCvhw.float().flatten(2).transpose(1, 2)) + self.positions(h, w)

    def class_condition(self, label_B: torch.Tensor) -> torch.Tensor:
        """label (B,) in [0, num_classes] -> cond_BD (B, D): start token and AdaLN condition."""
        return self.class_emb(label_B)

    # ---- training forward ------------------------------------------------------------------------------
    def forward(self, label_B: torch.Tensor, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Block-causal forward over one schedule (teacher forcing).

        label_B: (B,) class ids (`num_classes` = null class; drop labels beforehand).
        inputs: for scales 2..K of the schedule, the previous scale's code map upsampled to this scale,
            each (B, Cv, h_k, h_k) (`flex_inputs`); the schedule is (1, h_2, ..., h_K).
        Returns logits (B, L, V), L = 1 + sum h_k^2.
        """
        cond_BD = self.class_condition(label_B)
        sizes = (1, *(int(x.shape[-1]) for x in inputs))
        x_BLC = torch.cat([self.start_tokens(cond_BD), *(self.scale_tokens(x) for x in inputs)], dim=1)
        bias = block_causal_bias(sizes).to(x_BLC.device)
        for block in self.blocks:
            x_BLC = block(x_BLC, cond_BD, bias)
        return self.head(self.head_nm(x_BLC.float(), cond_BD)).float()  # B, L, V

    # ---- cached decoding of one scale --------------------------------------------------------------------
    def class_conditions(self, label_B: torch.Tensor) -> ClassConditions:
        """Everything the class label fixes for a whole sample, computed once."""
        cond_BD = self.class_condition(label_B)
        blocks = tuple(tuple(block.modulation(cond_BD)) for block in self.typed_blocks())
        return ClassConditions(cond_BD=cond_BD, blocks=blocks, head=self.head_nm.modulation(cond_BD))

    def forward_scale(
        self, x_BlC: torch.Tensor, conditions: ClassConditions, cache: LayeredKVCache, *, positions_l: torch.Tensor
    ) -> torch.Tensor:
        """One scale against the cache: embedded tokens (B, l, C) -> logits (B, l, V); appends its K/V."""
        if len(cache) != len(self.blocks):
            raise ValueError(f"cache has {len(cache)} layers but the model has {len(self.blocks)} blocks")
        for block, modulation, layer_cache in zip(self.typed_blocks(), conditions.blocks, cache, strict=True):
            x_BlC = block.forward_modulated(x_BlC, modulation, None, layer_cache, positions_L=positions_l)
        return self.head(self.head_nm.forward_modulated(x_BlC.float(), conditions.head)).float()

    def new_cache(
        self, batch: int, capacity: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
    ) -> LayeredKVCache:
        """A cache of `capacity` tokens (all tokens of the schedule to sample) per block for `batch` rows."""
        return LayeredKVCache.allocate(
            len(self.blocks), batch, self.config.num_heads, capacity, self.config.head_dim, dtype=dtype, device=device
        )

    # ---- initialisation (VAR's recipe) -----------------------------------------------------------------
    @torch.no_grad()
    def init_weights(
        self,
        *,
        init_adaln: float = 0.5,
        init_adaln_gamma: float = 1e-5,
        init_head: float = 0.02,
        generator: torch.Generator | None = None,
    ) -> None:
        """VAR's training initialisation (the position map keeps its sin/cos pattern)."""
        std = math.sqrt(1 / self.C / 3)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(m.weight, std=std, generator=generator)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    m.bias.zero_()
        nn.init.trunc_normal_(self.pos_start, std=std, generator=generator)
        self.head.weight.mul_(init_head)
        self.head_nm.ada_lin[-1].weight.mul_(init_adaln)
        self.head_nm.ada_lin[-1].bias.zero_()
        C, depth = self.C, len(self.blocks)
        for block in self.typed_blocks():
            block.attn.proj.weight.div_(math.sqrt(2 * depth))
            block.ffn.fc2.weight.div_(math.sqrt(2 * depth))
            if block.attn.attn_l2_norm:
                block.attn.scale_mul_1H11.fill_(math.log(4.0))
            block.ada_lin[-1].weight[2 * C :].mul_(init_adaln)
            block.ada_lin[-1].weight[: 2 * C].mul_(init_adaln_gamma)
            block.ada_lin[-1].bias.zero_()
