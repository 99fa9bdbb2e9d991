"""VAR: class-conditional next-scale prediction transformer (Tian et al., 2024).

The model is a pure function: `forward(label_B, x_BLCv_wo_first_l)` is the block-causal training
forward; `forward_scale(x, conditions, cache)` runs one scale against a KV cache for the sampler.
With `config.markov` (HMAR, MVAR) the mask is block-diagonal by scale (optionally with a spatial window
inside the fine scales) and `forward_markov_scale` runs one scale alone, with no cache; with
`config.mask_depth` a masked-refinement branch (`mask_blocks`, `mask_head`, `mask_embed`) re-predicts
masked tokens of a scale (`forward_mask`). No RNG,
no sampling, no label dropout inside (see `drop_labels`). Parameter and buffer names match the
official `VAR` so its state dicts (`var_d16.pth` ... `var_d36.pth`) load key for key.

Axis legend: B batch, L tokens of all scales, l tokens of one scale, first_l tokens of the first
scale, C width, D condition width (= C), Cv = Cvae tokenizer latent channels, V vocabulary, H heads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from genmotion.cache import LayeredKVCache
from genmotion.image_core.config import VARConfig
from genmotion.image_core.neighbourhood import neighbourhood_mask
from genmotion.image_core.var_blocks import AdaLNBeforeHead, AdaLNSelfAttn, SharedAdaLin

__all__ = ["VAR", "ClassConditions", "attention_bias", "block_causal_bias", "drop_labels", "level_ids"]


@dataclass(frozen=True)
class ClassConditions:
    """What a class label fixes for every scale: the class embedding cond_BD (B, D) (start tokens), each
    block's six AdaLN vectors (each (B, 1, C)) and the head's AdaLN (scale, shift); the same for the
    masked-refinement branch when the model has one (`mask_blocks`, `mask_head`)."""

    cond_BD: torch.Tensor
    blocks: tuple[tuple[torch.Tensor, ...], ...]
    head: tuple[torch.Tensor, torch.Tensor]
    mask_blocks: tuple[tuple[torch.Tensor, ...], ...] = ()
    mask_head: tuple[torch.Tensor, torch.Tensor] | None = None


def level_ids(patch_nums: tuple[int, ...]) -> torch.Tensor:
    """(1, L) scale index of every token (official buffer `lvl_1L`)."""
    return torch.cat([torch.full((p * p,), i, dtype=torch.long) for i, p in enumerate(patch_nums)]).view(1, -1)


def block_causal_bias(patch_nums: tuple[int, ...]) -> torch.Tensor:
    """(1, 1, L, L) additive mask: token i sees token j iff scale(j) <= scale(i) (buffer `attn_bias_for_masking`)."""
    lvl = level_ids(patch_nums)[0]
    return torch.where(lvl[:, None] >= lvl[None, :], 0.0, -math.inf).reshape(1, 1, lvl.numel(), lvl.numel())


def attention_bias(config: VARConfig) -> torch.Tensor:
    """(1, 1, L, L) training mask of `config`: block-causal (VAR), or block-diagonal by scale (markov), with each
    scale from `neighbourhood_from` on further limited to its tokens' kernel x kernel windows (MVAR)."""
    if not config.markov:
        return block_causal_bias(config.patch_nums)
    lvl = level_ids(config.patch_nums)[0]
    allowed = lvl[:, None] == lvl[None, :]
    for si, ((begin, end), side) in enumerate(zip(config.scale_slices, config.patch_nums, strict=True)):
        if config.neighbourhood(si):
            allowed[begin:end, begin:end] = neighbourhood_mask(side, config.neighbourhood(si))
    return torch.where(allowed, 0.0, -math.inf).reshape(1, 1, lvl.numel(), lvl.numel())


def drop_labels(label_B: torch.Tensor, num_classes: int, rate: float, generator: torch.Generator) -> torch.Tensor:
    """Replace each label by the null class `num_classes` with probability `rate` (training for guidance)."""
    drop = torch.rand(label_B.shape, generator=generator, device=generator.device).to(label_B.device) < rate
    return torch.where(drop, torch.full_like(label_B, num_classes), label_B)


class VAR(nn.Module):
    """Next-scale transformer. Holds no tokenizer: inputs are tokenizer latents (Cv channels) and
    outputs are logits over the tokenizer's vocabulary."""

    def __init__(self, config: VARConfig) -> None:
        super().__init__()
        self.config = config
        C, cfg = config.width, config
        self.C = self.D = C
        self.Cvae, self.V, self.num_classes = cfg.latent_channels, cfg.vocab_size, cfg.num_classes
        self.patch_nums = tuple(cfg.patch_nums)
        self.L, self.first_l = cfg.num_tokens, cfg.first_tokens
        init_std = math.sqrt(1 / C / 3)

        self.word_embed = nn.Linear(self.Cvae, C)
        self.class_emb = nn.Embedding(self.num_classes + 1, C)  # the last row is the null class
        nn.init.trunc_normal_(self.class_emb.weight, std=init_std)
        self.pos_start = nn.Parameter(torch.empty(1, self.first_l, C))
        self.pos_1LC = nn.Parameter(torch.empty(1, self.L, C))
        nn.init.trunc_normal_(self.pos_start, std=init_std)
        nn.init.trunc_normal_(self.pos_1LC, std=init_std)
        self.lvl_embed = nn.Embedding(len(self.patch_nums), C)
        nn.init.trunc_normal_(self.lvl_embed.weight, std=init_std)

        self.shared_ada_lin: nn.Module = (
            nn.Sequential(nn.SiLU(), SharedAdaLin(C, 6 * C)) if cfg.shared_aln else nn.Identity()
        )
        # Stochastic depth grows linearly over the blocks (plain floats: this also runs on the meta device).
        rates = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(self._block(rates[i]) for i in range(cfg.depth))
        # Derived buffers, persistent because the official state dicts carry them (checked on load).
        self.register_buffer("lvl_1L", level_ids(self.patch_nums))
        self.register_buffer("attn_bias_for_masking", attention_bias(cfg))
        self.head_nm = AdaLNBeforeHead(C, C, cfg.norm_eps)
        self.head = nn.Linear(C, self.V)
        if cfg.mask_depth:  # HMAR: the trunk's last `mask_depth` blocks and the head, again, for masked tokens
            self.mask_blocks = nn.ModuleList(self._block(r) for r in rates[cfg.depth - cfg.mask_depth :])
            self.mask_head_nm = AdaLNBeforeHead(C, C, cfg.norm_eps)
            self.mask_head = nn.Linear(C, self.V)
            self.mask_embed = nn.Embedding(1, C)
            nn.init.trunc_normal_(self.mask_embed.weight, std=init_std)

    def _block(self, drop_path: float) -> AdaLNSelfAttn:
        cfg = self.config
        return AdaLNSelfAttn(
            width=cfg.width, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio, shared_aln=cfg.shared_aln,
            norm_eps=cfg.norm_eps, drop=cfg.drop_rate, attn_drop=cfg.attn_drop_rate, drop_path=drop_path,
            attn_l2_norm=cfg.attn_l2_norm,
        )  # fmt: skip

    def typed_blocks(self) -> list[AdaLNSelfAttn]:
        return [cast(AdaLNSelfAttn, b) for b in self.blocks]

    def typed_mask_blocks(self) -> list[AdaLNSelfAttn]:
        return [cast(AdaLNSelfAttn, b) for b in self.mask_blocks] if self.config.mask_depth else []

    # ---- pieces shared by training and sampling ---------------------------------------------------
    def class_condition(self, label_B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """label (B,) in [0, num_classes] -> (cond_BD for the head and start tokens, block condition)."""
        cond_BD = self.class_emb(label_B)
        return cond_BD, self.shared_ada_lin(cond_BD)

    def level_positions(self) -> torch.Tensor:
        """(1, L, C): learned absolute position + level embedding of every token."""
        return self.lvl_embed(self.lvl_1L) + self.pos_1LC

    def start_tokens(self, cond_BD: torch.Tensor) -> torch.Tensor:
        """Input of the first scale: (B, first_l, C) = class embedding + pos_start + level/position."""
        B = cond_BD.shape[0]
        sos = cond_BD.unsqueeze(1).expand(B, self.first_l, -1) + self.pos_start.expand(B, -1, -1)
        return sos + self.level_positions()[:, : self.first_l]

    def scale_tokens(self, scale_index: int, x_BlCv: torch.Tensor) -> torch.Tensor:
        """Input of scale `scale_index` >= 1 from the area-downsampled f_hat: (B, l, Cv) -> (B, l, C)."""
        begin, end = self.config.scale_slices[scale_index]
        return self.word_embed(x_BlCv.float()) + self.level_positions()[:, begin:end]

    def logits(self, h_BLC: torch.Tensor, cond_BD: torch.Tensor) -> torch.Tensor:
        """(B, L, C) -> (B, L, V) float32 logits, through the AdaLN before the head."""
        return self.head(self.head_nm(h_BLC.float(), cond_BD)).float()

    # ---- training forward --------------------------------------------------------------------------
    def forward(self, label_B: torch.Tensor, x_BLCv_wo_first_l: torch.Tensor) -> torch.Tensor:
        """Block-causal forward over all scales (teacher forcing).

        label_B: (B,) class ids, `num_classes` meaning the null class (apply `drop_labels` beforehand).
        x_BLCv_wo_first_l: (B, L - first_l, Cv) from `MultiScaleQuantizer.idxBl_to_var_input`.
        Returns logits (B, L, V).
        """
        B = x_BLCv_wo_first_l.shape[0]
        cond_BD, cond_blocks = self.class_condition(label_B)
        sos_BlC = cond_BD.unsqueeze(1).expand(B, self.first_l, -1) + self.pos_start.expand(B, -1, -1)
        x_BLC = torch.cat((sos_BlC, self.word_embed(x_BLCv_wo_first_l.float())), dim=1)
        x_BLC = x_BLC + self.level_positions()  # B, L, C
        for block in self.blocks:
            x_BLC = block(x_BLC, cond_blocks, self.attn_bias_for_masking)
        return self.logits(x_BLC, cond_BD)  # B, L, V

    # ---- scale-Markov variants (HMAR, MVAR) ------------------------------------------------------------
    def masked_tokens(self, x_BlCv: torch.Tensor, h_BlCv: torch.Tensor, masked_Bl: torch.Tensor) -> torch.Tensor:
        """HMAR's masked input (no positions): word_embed(f_hat input) + the scale's own known codes h (area-
        downsampled phi(up(code))) through the same projection, or the mask embedding where `masked_Bl` is True.
        (B, l, Cv) x 2 + (B, l) bool -> (B, l, C)."""
        known = F.linear(h_BlCv.float(), self.word_embed.weight)
        own = torch.where(masked_Bl.unsqueeze(-1), self.mask_embed.weight.view(1, 1, -1), known)
        return self.word_embed(x_BlCv.float()) + own

    def forward_mask(
        self, label_B: torch.Tensor, x_BLCv_wo_first_l: torch.Tensor, h_BLCv_wo_first_l: torch.Tensor,
        masked_BL: torch.Tensor,
    ) -> torch.Tensor:  # fmt: skip
        """Teacher-forced masked refinement over all scales: trunk then `mask_blocks`, block-diagonal mask.

        x: (B, L - first_l, Cv) next-scale inputs as in `forward`; h: (B, L - first_l, Cv) each scale's own
        ground-truth codes, area-downsampled; masked_BL: (B, L - first_l) True where a token is hidden.
        Returns the mask head's logits (B, L, V) (first scale: start tokens, nothing hidden).
        """
        if not self.config.mask_depth:
            raise ValueError("this model has no masked-refinement branch (mask_depth: 0)")
        B = x_BLCv_wo_first_l.shape[0]
        cond_BD, cond_blocks = self.class_condition(label_B)
        sos_BlC = cond_BD.unsqueeze(1).expand(B, self.first_l, -1) + self.pos_start.expand(B, -1, -1)
        rest = self.masked_tokens(x_BLCv_wo_first_l, h_BLCv_wo_first_l, masked_BL)
        x_BLC = torch.cat((sos_BlC, rest), dim=1) + self.level_positions()  # B, L, C
        trunk = self.config.depth - self.config.mask_depth
        for block in [*self.typed_blocks()[:trunk], *self.typed_mask_blocks()]:
            x_BLC = block(x_BLC, cond_blocks, self.attn_bias_for_masking)
        return self.mask_head(self.mask_head_nm(x_BLC.float(), cond_BD)).float()  # B, L, V

    def forward_markov_scale(
        self, x_BlC: torch.Tensor, conditions: ClassConditions, scale_index: int, *, mask: bool = False
    ) -> torch.Tensor:
        """One scale alone, no cache (its input carries the coarser scales): x (B, l, C) embedded tokens with
        positions -> logits (B, l, V) of the next-scale head, or of the refinement branch with `mask`."""
        if not self.config.markov:
            raise ValueError("forward_markov_scale needs a scale-Markov model (markov: true)")
        side, kernel = self.patch_nums[scale_index], self.config.neighbourhood(scale_index)
        window = (side, kernel) if kernel else None
        trunk = self.config.depth - self.config.mask_depth if mask else self.config.depth
        blocks = list(zip(self.typed_blocks()[:trunk], conditions.blocks[:trunk], strict=True))
        if mask:
            blocks += list(zip(self.typed_mask_blocks(), conditions.mask_blocks, strict=True))
        for block, modulation in blocks:
            x_BlC = block.forward_modulated(x_BlC, modulation, None, neighbourhood=window)
        if not mask:
            return self.head(self.head_nm.forward_modulated(x_BlC.float(), conditions.head)).float()  # B, l, V
        assert conditions.mask_head is not None, "conditions made by a model without a refinement branch"
        return self.mask_head(self.mask_head_nm.forward_modulated(x_BlC.float(), conditions.mask_head)).float()

    @torch.no_grad()
    def init_mask_branch(self) -> None:
        """Start the refinement branch as a copy of the last `mask_depth` blocks and the head (HMAR's fine-tune)."""
        depth, R = self.config.depth, self.config.mask_depth
        for source, target in zip(self.typed_blocks()[depth - R :], self.typed_mask_blocks(), strict=True):
            target.load_state_dict(source.state_dict())
        self.mask_head_nm.load_state_dict(self.head_nm.state_dict())
        self.mask_head.load_state_dict(self.head.state_dict())

    # ---- cached decoding of one scale ------------------------------------------------------------
    def class_conditions(self, label_B: torch.Tensor) -> ClassConditions:
        """Everything the class label fixes for a whole sample, computed once (not once per scale)."""
        cond_BD, cond_blocks = self.class_condition(label_B)
        blocks = tuple(tuple(block.modulation(cond_blocks)) for block in self.typed_blocks())
        mask_blocks = tuple(tuple(block.modulation(cond_blocks)) for block in self.typed_mask_blocks())
        mask_head = self.mask_head_nm.modulation(cond_BD) if self.config.mask_depth else None
        return ClassConditions(
            cond_BD=cond_BD,
            blocks=blocks,
            head=self.head_nm.modulation(cond_BD),
            mask_blocks=mask_blocks,
            mask_head=mask_head,
        )

    def forward_scale(
        self,
        x_BlC: torch.Tensor,
        conditions: ClassConditions,
        cache: LayeredKVCache,
        *,
        positions_l: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One scale against the cache: x (B, l, C) embedded tokens -> logits (B, l, V).

        The l tokens attend to every cached token of earlier scales and to each other; their keys and
        values are appended to `cache` (one `KVCache` or `HeadGroupCache` per block) unless it is
        read-only. (Cache policies read the queries with `genmotion.cache.AttentionProbe`.)
        """
        if len(cache) != len(self.blocks):
            raise ValueError(f"cache has {len(cache)} layers but the model has {len(self.blocks)} blocks")
        for block, modulation, layer_cache in zip(self.typed_blocks(), conditions.blocks, cache, strict=True):
            x_BlC = block.forward_modulated(
                x_BlC, modulation, None, layer_cache, positions_L=positions_l, commit=cache.commit
            )
        return self.head(self.head_nm.forward_modulated(x_BlC.float(), conditions.head)).float()  # B, l, V

    def new_cache(
        self,
        batch: int,
        capacity: int | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> LayeredKVCache:
        """A cache of `capacity` tokens (all L of every scale by default) per block for `batch` sequences: the
        signature every model's `new_cache` shares."""
        size = self.L if capacity is None else capacity
        return LayeredKVCache.allocate(
            len(self.blocks), batch, self.config.num_heads, size, self.config.head_dim, dtype=dtype, device=device
        )

    # ---- initialisation (official recipe) ---------------------------------------------------------
    @torch.no_grad()
    def init_weights(
        self,
        *,
        init_adaln: float = 0.5,
        init_adaln_gamma: float = 1e-5,
        init_head: float = 0.02,
        init_std: float = -1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        """The official training initialisation; every parameter is drawn from `generator` when given."""
        std = math.sqrt(1 / self.C / 3) if init_std < 0 else init_std
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=std, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.Embedding):
                nn.init.trunc_normal_(m.weight, std=std, generator=generator)
        for p in (self.pos_start, self.pos_1LC):
            nn.init.trunc_normal_(p, std=math.sqrt(1 / self.C / 3), generator=generator)
        self.head.weight.mul_(init_head)
        self.head.bias.zero_()
        self.head_nm.ada_lin[-1].weight.mul_(init_adaln)
        self.head_nm.ada_lin[-1].bias.zero_()
        C = self.C
        for block in [*self.typed_blocks(), *self.typed_mask_blocks()]:
            block.attn.proj.weight.div_(math.sqrt(2 * len(self.blocks)))
            block.ffn.fc2.weight.div_(math.sqrt(2 * len(self.blocks)))
            block.attn.q_bias.zero_()
            block.attn.v_bias.zero_()
            if block.attn.attn_l2_norm:
                block.attn.scale_mul_1H11.fill_(math.log(4.0))
            if block.shared_aln:
                block.ada_gss.copy_(
                    torch.randn(block.ada_gss.shape, generator=generator, device=block.ada_gss.device) / C**0.5
                )
                block.ada_gss[:, :, 2:].mul_(init_adaln)
                block.ada_gss[:, :, :2].mul_(init_adaln_gamma)
            else:
                block.ada_lin[-1].weight[2 * C :].mul_(init_adaln)
                block.ada_lin[-1].weight[: 2 * C].mul_(init_adaln_gamma)
                block.ada_lin[-1].bias.zero_()
