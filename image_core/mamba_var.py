"""M-VAR: next-scale prediction with intra-scale attention and an inter-scale selective scan (Ren et al., 2024).

Each block decouples the two: bidirectional attention among the tokens of the current scale only (block-
diagonal over the scales), then a causal Mamba2-style scan (`mamba_scan.Mamba2Mixer`) over the concatenated
sequence of every scale so far, then the FFN; AdaLN from the class as in VAR, with nine vectors for the three
sublayers. The embeddings, the head and the tokenizer interface are VAR's (`var_model.VAR`), so the VAR
tokenizer serves it unchanged. Decoding needs no KV cache: each block carries its scan state (`ScanCache`)
from scale to scale, so a scale costs time linear in its own tokens, whatever came before.

The model is a pure function: `forward(label_B, x_BLCv_wo_first_l)` is the teacher-forced training forward over
all scales; `forward_scale(x, conditions, cache)` runs one scale and advances the scan states in `cache`.

Axis legend: B batch, L tokens of all scales, l tokens of one scale, C width, D condition width (= C), Cv
tokenizer latent channels, V vocabulary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import nn

from genmotion.image_core.config import VARConfig, VARImageConfig
from genmotion.image_core.mamba_scan import Mamba2Mixer, ScanState
from genmotion.image_core.var_blocks import FFN, AdaLNBeforeHead, DropPath, SelfAttention
from genmotion.image_core.var_model import ClassConditions, level_ids
from genmotion.nn.vqvae import VQVAE

__all__ = [
    "MambaVAR",
    "MambaVARBlock",
    "MambaVARConfig",
    "MambaVARImageConfig",
    "MambaVARImageModel",
    "ScanCache",
    "scale_diagonal_bias",
]


@dataclass(frozen=True, kw_only=True)
class MambaVARConfig(VARConfig):
    """VAR's transformer settings plus the scan's: state size N, convolution width, inner expansion, the scan's
    head dim and the chunk length of the chunked scan (a speed setting: the result does not depend on it)."""

    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    ssm_head_dim: int = 32
    scan_chunk: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.shared_aln:
            raise ValueError("M-VAR has no shared-AdaLN form: set shared_aln false")
        if min(self.d_state, self.d_conv, self.expand, self.ssm_head_dim, self.scan_chunk) < 1:
            raise ValueError(f"d_state, d_conv, expand, ssm_head_dim and scan_chunk must be >= 1: {self}")
        if (self.expand * self.width) % self.ssm_head_dim:
            raise ValueError(f"expand * width = {self.expand * self.width} must be a multiple of ssm_head_dim")


@dataclass(frozen=True, kw_only=True)
class MambaVARImageConfig(VARImageConfig):
    """The VAR tokenizer and an M-VAR transformer: what an `m-var` checkpoint directory holds."""

    var: MambaVARConfig = field(default_factory=MambaVARConfig)


def scale_diagonal_bias(patch_nums: tuple[int, ...]) -> torch.Tensor:
    """(1, 1, L, L) additive mask: token i sees token j iff both lie in the same scale (block-diagonal)."""
    lvl = level_ids(patch_nums)[0]
    return torch.where(lvl[:, None] == lvl[None, :], 0.0, -math.inf).reshape(1, 1, lvl.numel(), lvl.numel())


class ScanCache:
    """Per block, the scan state after the scales decoded so far (`ScanState`); `length` tokens seen.

    Its size does not grow with the scales: what a KV cache is to VAR, this is to M-VAR."""

    def __init__(self, states: list[ScanState]) -> None:
        self.states = states
        self.length = 0

    def __len__(self) -> int:
        return len(self.states)

    @property
    def batch(self) -> int:
        return self.states[0].ssm.shape[0]

    def nbytes(self) -> int:
        return sum(s.nbytes() for s in self.states)


class MambaVARBlock(nn.Module):
    """x += g1 attn(within the scale); x += g2 scan(over all scales); x += g3 ffn, each on an affine-free LN
    scaled/shifted by the class: nine vectors gamma1-3, scale1-3, shift1-3 (VAR's order, one more sublayer)."""

    def __init__(self, config: MambaVARConfig, drop_path: float) -> None:
        super().__init__()
        C = self.C = config.width
        self.attn = SelfAttention(
            C, config.num_heads, attn_drop=config.attn_drop_rate, proj_drop=config.drop_rate,
            attn_l2_norm=config.attn_l2_norm,
        )  # fmt: skip
        self.mixer = Mamba2Mixer(
            C, d_state=config.d_state, d_conv=config.d_conv, expand=config.expand, head_dim=config.ssm_head_dim,
            chunk=config.scan_chunk,
        )  # fmt: skip
        self.ffn = FFN(C, round(C * config.mlp_ratio), drop=config.drop_rate)
        self.ln_wo_grad = nn.LayerNorm(C, eps=config.norm_eps, elementwise_affine=False)
        self.ada_lin = nn.Sequential(nn.SiLU(), nn.Linear(C, 9 * C))
        self.drop_path: nn.Module = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def modulation(self, cond_BD: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, D) -> nine (B, 1, C) vectors."""
        return self.ada_lin(cond_BD).view(-1, 1, 9, self.C).unbind(2)

    def forward(
        self,
        x_BLC: torch.Tensor,
        modulation: tuple[torch.Tensor, ...],
        attn_bias: torch.Tensor | None,
        state: ScanState | None = None,
    ) -> tuple[torch.Tensor, ScanState]:
        """x (B, L, C) -> (B, L, C) and the scan state after it. `attn_bias` None: x is one scale, attended whole."""
        g1, g2, g3, s1, s2, s3, b1, b2, b3 = modulation
        h = self.ln_wo_grad(x_BLC).mul(s1.add(1)).add(b1)
        x_BLC = x_BLC + self.drop_path(self.attn(h, attn_bias).mul(g1))
        h = self.ln_wo_grad(x_BLC).mul(s2.add(1)).add(b2)
        scanned, state = self.mixer(h, state)
        x_BLC = x_BLC + self.drop_path(scanned.mul(g2))
        h = self.ln_wo_grad(x_BLC).mul(s3.add(1)).add(b3)
        return x_BLC + self.drop_path(self.ffn(h).mul(g3)), state


class MambaVAR(nn.Module):
    """Next-scale transformer of M-VAR. Embeddings and head as VAR's (same names); blocks `MambaVARBlock`."""

    def __init__(self, config: MambaVARConfig) -> None:
        super().__init__()
        self.config = config
        C = self.C = self.D = config.width
        self.Cvae, self.V, self.num_classes = config.latent_channels, config.vocab_size, config.num_classes
        self.patch_nums = tuple(config.patch_nums)
        self.L, self.first_l = config.num_tokens, config.first_tokens
        self.word_embed = nn.Linear(self.Cvae, C)
        self.class_emb = nn.Embedding(self.num_classes + 1, C)  # the last row is the null class
        self.pos_start = nn.Parameter(torch.zeros(1, self.first_l, C))
        self.pos_1LC = nn.Parameter(torch.zeros(1, self.L, C))
        self.lvl_embed = nn.Embedding(len(self.patch_nums), C)
        rates = [config.drop_path_rate * i / max(config.depth - 1, 1) for i in range(config.depth)]
        self.blocks = nn.ModuleList(MambaVARBlock(config, rates[i]) for i in range(config.depth))
        self.register_buffer("lvl_1L", level_ids(self.patch_nums), persistent=False)
        self.register_buffer("attn_bias_for_masking", scale_diagonal_bias(self.patch_nums), persistent=False)
        self.head_nm = AdaLNBeforeHead(C, C, config.norm_eps)
        self.head = nn.Linear(C, self.V)

    def typed_blocks(self) -> list[MambaVARBlock]:
        return [cast(MambaVARBlock, b) for b in self.blocks]

    # ---- pieces shared by training and sampling (as VAR's) ---------------------------------------------
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

    def class_conditions(self, label_B: torch.Tensor) -> ClassConditions:
        """Everything the class label fixes for a whole sample, computed once (not once per scale)."""
        cond_BD = self.class_emb(label_B)
        blocks = tuple(tuple(block.modulation(cond_BD)) for block in self.typed_blocks())
        return ClassConditions(cond_BD=cond_BD, blocks=blocks, head=self.head_nm.modulation(cond_BD))

    # ---- training forward --------------------------------------------------------------------------
    def forward(self, label_B: torch.Tensor, x_BLCv_wo_first_l: torch.Tensor) -> torch.Tensor:
        """Teacher-forced forward over all scales: label (B,) (`num_classes` = null), x (B, L - first_l, Cv)
        from `MultiScaleQuantizer.idxBl_to_var_input` -> logits (B, L, V)."""
        conditions = self.class_conditions(label_B)
        x_BLC = torch.cat((self.start_tokens(conditions.cond_BD), self._later_tokens(x_BLCv_wo_first_l)), dim=1)
        for block, modulation in zip(self.typed_blocks(), conditions.blocks, strict=True):
            x_BLC, _ = block(x_BLC, modulation, self.attn_bias_for_masking)
        return self.head(self.head_nm.forward_modulated(x_BLC.float(), conditions.head)).float()  # B, L, V

    def _later_tokens(self, x_BLCv: torch.Tensor) -> torch.Tensor:
        return self.word_embed(x_BLCv.float()) + self.level_positions()[:, self.first_l :]

    # ---- decoding one scale, carrying the scan states ------------------------------------------------
    def new_cache(
        self, batch: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
    ) -> ScanCache:
        """Fresh scan states (zeros) for `batch` sequences, one per block."""
        return ScanCache([b.mixer.new_state(batch, dtype=dtype, device=device) for b in self.typed_blocks()])

    def forward_scale(self, x_BlC: torch.Tensor, conditions: ClassConditions, cache: ScanCache) -> torch.Tensor:
        """One scale: embedded tokens x (B, l, C) -> logits (B, l, V). The l tokens attend to each other only;
        the scan continues from each block's state in `cache`, which is advanced past them."""
        if len(cache) != len(self.blocks) or cache.batch != x_BlC.shape[0]:
            raise ValueError(f"cache of {len(cache)} blocks x {cache.batch} rows for {len(self.blocks)} x {len(x_BlC)}")
        for i, (block, modulation) in enumerate(zip(self.typed_blocks(), conditions.blocks, strict=True)):
            x_BlC, cache.states[i] = block(x_BlC, modulation, None, cache.states[i])
        cache.length += x_BlC.shape[1]
        return self.head(self.head_nm.forward_modulated(x_BlC.float(), conditions.head)).float()  # B, l, V

    # ---- initialisation (VAR's recipe) -----------------------------------------------------------------
    @torch.no_grad()
    def init_weights(
        self, *, init_adaln: float = 0.5, init_adaln_gamma: float = 1e-5, init_head: float = 0.02,
        generator: torch.Generator | None = None,
    ) -> None:  # fmt: skip
        """VAR's training initialisation (trunc-normal std sqrt(1/(3C)), small head and gates, output
        projections / sqrt(2 depth)); the scan's decay and step parameters keep their spreads."""
        std = math.sqrt(1 / self.C / 3)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(m.weight, std=std, generator=generator)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    m.bias.zero_()
        for p in (self.pos_start, self.pos_1LC):
            nn.init.trunc_normal_(p, std=std, generator=generator)
        self.head.weight.mul_(init_head)
        self.head_nm.ada_lin[-1].weight.mul_(init_adaln)
        C, depth = self.C, len(self.blocks)
        for block in self.typed_blocks():
            for out in (block.attn.proj, block.mixer.out_proj, block.ffn.fc2):
                out.weight.div_(math.sqrt(2 * depth))
            if block.attn.attn_l2_norm:
                block.attn.scale_mul_1H11.fill_(math.log(4.0))
            modulation = cast(nn.Linear, block.ada_lin[-1])
            modulation.weight[3 * C :].mul_(init_adaln)  # scales and shifts
            modulation.weight[: 3 * C].mul_(init_adaln_gamma)  # gates


class MambaVARImageModel(nn.Module):
    """`vae` (the VAR tokenizer, VQVAE) and `var` (MambaVAR) from one `MambaVARImageConfig`; no forward."""

    def __init__(self, config: MambaVARImageConfig) -> None:
        super().__init__()
        self.config = config
        self.vae = VQVAE(config.vae)
        self.var = MambaVAR(config.var)
