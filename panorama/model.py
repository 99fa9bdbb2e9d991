"""The CubeComposer flow transformer (Li et al., CVPR 2026) at toy scale: one padded cube face x one time
window of noisy tokens, conditioned in-context on a pool of context tokens, with sparse context attention
(generated tokens attend to everything, context tokens only within their own frame) and cube-aware 3-D
RoPE on the unfolded cross. Context tokens are modulated at the clean flow time, so their keys and
values do not depend on the denoising step and are computed once per call (`ContextState`).

Axes: B batch, Lg generated tokens, Lc context tokens, W width, H heads, D head dim, T frames,
S face size, P padding pixels, c cells per face side, K token channels (3 patch^2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from genmotion.nn.rope import Rotary, apply_rope
from genmotion.nn.tiny import timestep_embedding
from genmotion.panorama.config import CubeComposerConfig
from genmotion.panorama.context import Context
from genmotion.panorama.cube import cross_positions, pad_faces, strip_positions

__all__ = [
    "CubeComposerModel",
    "ContextState",
    "attention_flops",
    "context_inputs",
    "overlap_add",
    "patchify",
    "unpatchify",
]

_TIME_FEATURES = 128


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(..., C, h p, w p) -> (..., h w, C p p), raster order."""
    *lead, C, Hp, Wp = x.shape
    h, w = Hp // p, Wp // p
    n = len(lead)
    x = x.reshape(*lead, C, h, p, w, p).permute(*range(n), n + 1, n + 3, n, n + 2, n + 4)  # (..., h, w, C, p, p)
    return x.reshape(*lead, h * w, C * p * p)


def unpatchify(tokens: torch.Tensor, p: int, cells: int, channels: int = 3) -> torch.Tensor:
    """(..., cells^2, C p p) -> (..., C, cells p, cells p)."""
    *lead, _, _ = tokens.shape
    x = tokens.reshape(*lead, cells, cells, channels, p, p)
    n = len(lead)
    x = x.permute(*range(n), n + 2, n, n + 3, n + 1, n + 4)
    return x.reshape(*lead, channels, cells * p, cells * p)


def overlap_add(tokens: torch.Tensor, p: int, overlap: int, cells: int, channels: int = 3) -> torch.Tensor:
    """Tokens that each predict their cell grown by `overlap` pixels per side, (B, T cells^2, C q q) with
    q = p + 2 overlap, -> plain tokens (B, T cells^2, C p p): every pixel is the mean of all the grown cells
    that cover it (one inside a token, two along a token boundary, four at a corner)."""
    B, L, E = tokens.shape
    q, size = p + 2 * overlap, cells * p
    cols = tokens.reshape(B * (L // cells**2), cells**2, E).transpose(1, 2)  # (B T, C q q, cells^2)
    summed = F.fold(cols, (size, size), kernel_size=q, stride=p, padding=overlap)
    count = F.fold(torch.ones_like(cols[:1]), (size, size), kernel_size=q, stride=p, padding=overlap)
    return patchify(summed / count, p).reshape(B, L, channels * p * p)


def face_positions(config: CubeComposerConfig, rope: str = "cube") -> torch.Tensor:
    """(6, 2, c, c) row/col RoPE positions of each face's cells."""
    return cross_positions(config.cells) if rope == "cube" else strip_positions(config.cells)


def gen_positions(config: CubeComposerConfig, face: int, times: torch.Tensor, rope: str = "cube") -> torch.Tensor:
    """(T (c + 2q)^2, 3) (t, row, col) of a padded face's tokens; padding cells take the neighbours' positions."""
    maps = pad_faces(face_positions(config, rope), config.pad_cells, (face,))[0]  # (2, n, n)
    rc = maps.flatten(1).T  # (n^2, 2)
    t = times.to(torch.float32).repeat_interleave(rc.shape[0])[:, None]
    return torch.cat([t, rc.repeat(times.shape[0], 1)], dim=-1)


def context_inputs(ctx: Context, config: CubeComposerConfig, rope: str = "cube") -> tuple[torch.Tensor, ...]:
    """Context -> tokens packed in frame slots: one slot per distinct frame time, six faces of c^2 cells each
    (absent faces invalid). Returns features (Lc, K + p^2), role (Lc,), positions (Lc, 3), valid (Lc,) with
    Lc = frames x 6 c^2; sparse attention keeps each slot to itself."""
    p, n = config.patch, config.cells**2
    items = torch.cat([patchify(ctx.pixels, p), patchify(ctx.mask, p)], dim=-1)  # (N, n, K + p^2)
    dev = items.device
    time, face = ctx.time.to(dev), ctx.face.to(dev)
    times = torch.unique(time)
    slot = torch.searchsorted(times, time)
    G = int(times.shape[0])
    feats = items.new_zeros(G, 6, n, items.shape[-1])
    feats[slot, face] = items
    role = torch.zeros(G, 6, n, dtype=torch.long, device=dev)
    role[slot, face] = ctx.role.to(dev)[:, None].expand(-1, n)
    valid = torch.zeros(G, 6, n, dtype=torch.bool, device=dev)
    valid[slot, face] = True
    rc = face_positions(config, rope).to(items).flatten(2).transpose(1, 2)  # (6, n, 2)
    t = times.to(items)[:, None, None, None].expand(G, 6, n, 1)
    pos = torch.cat([t, rc[None].expand(G, -1, -1, -1)], dim=-1)
    return feats.flatten(0, 2), role.flatten(), pos.flatten(0, 2), valid.flatten()


def attention_flops(gen: int, valid_LC: torch.Tensor, slot: int, sparse: bool = True) -> int:
    """Query-key products of one layer for `gen` generated tokens and context validity (Lc,) in slots of
    `slot` tokens: G (G + C) + sum over frames of C_f^2 (sparse) or G (G + C) + C (G + C) (full)."""
    per_frame = valid_LC.reshape(-1, slot).sum(-1)
    c = int(per_frame.sum())
    return gen * (gen + c) + (int((per_frame**2).sum()) if sparse else c * (gen + c))


def _slots(x_BHLD: torch.Tensor, slot: int) -> torch.Tensor:
    """(B, H, G slot, D) -> (B G, H, slot, D): each frame slot its own attention problem."""
    B, H, L, D = x_BHLD.shape
    return x_BHLD.reshape(B, H, L // slot, slot, D).transpose(1, 2).reshape(-1, H, slot, D)


def _unslots(x: torch.Tensor, batch: int) -> torch.Tensor:
    """(B G, H, slot, D) -> (B, H, G slot, D)."""
    BG, H, slot, D = x.shape
    return x.reshape(batch, BG // batch, H, slot, D).transpose(1, 2).reshape(batch, H, -1, D)


@dataclass
class ContextState:
    """Per-layer keys and values (B, H, Lc, D) of the context (after RoPE), and its key validity (B, Lc)."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    valid: torch.Tensor


class _Block(nn.Module):
    """AdaLN-modulated pre-norm block; the attention pattern is chosen by the caller."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.ada = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def qkv_of(self, h: torch.Tensor, cond: torch.Tensor, angles: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """h (B, L, W), cond (B, W), angles (B, L, D/2) -> q, k, v (B, H, L, D) with RoPE on q and k."""
        shift, scale = self.ada(cond)[:, None].chunk(6, dim=-1)[:2]
        x = self.norm1(h) * (1 + scale) + shift
        B, L, W = x.shape
        q, k, v = self.qkv(x).reshape(B, L, 3, self.heads, W // self.heads).permute(2, 0, 3, 1, 4)
        a = angles[:, None]
        return apply_rope(q, a), apply_rope(k, a), v

    def finish(self, h: torch.Tensor, attn_BHLD: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        _, _, gate1, shift2, scale2, gate2 = self.ada(cond)[:, None].chunk(6, dim=-1)
        B, _, L, _ = attn_BHLD.shape
        h = h + gate1 * self.proj(attn_BHLD.transpose(1, 2).reshape(B, L, -1))
        return h + gate2 * self.mlp(self.norm2(h) * (1 + scale2) + shift2)


class CubeComposerModel(nn.Module):
    """Velocity of a noisy padded face window given its own condition and a context pool."""

    def __init__(self, config: CubeComposerConfig) -> None:
        super().__init__()
        self.config = config
        K, m, W = config.token_channels, config.patch**2, config.width
        self.gen_in = nn.Linear(2 * K + m, W)
        self.ctx_in = nn.Linear(K + m, W)
        self.role = nn.Embedding(4, W)
        self.time = nn.Sequential(nn.Linear(_TIME_FEATURES, W), nn.SiLU(), nn.Linear(W, W))
        self.blocks = nn.ModuleList(_Block(W, config.heads, config.mlp_ratio) for _ in range(config.depth))
        self.final_ada = nn.Linear(W, 2 * W)
        self.final_norm = nn.LayerNorm(W, elementwise_affine=False, eps=1e-6)
        self.out = nn.Linear(W, K)
        zeroed = [self.final_ada, self.out]
        if config.overlap:  # each token's data estimate grown by `overlap` pixels per side: offsets of the ring
            q = config.patch + 2 * config.overlap
            self.out_ring = nn.Linear(W, 3 * q * q)
            zeroed.append(self.out_ring)
            ring = torch.ones(q, q)
            ring[config.overlap : q - config.overlap, config.overlap : q - config.overlap] = 0
            self.register_buffer("ring", ring, persistent=False)
        for layer in zeroed:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.rotary = Rotary(W // config.heads, config.rope_axes, config.rope_base)

    def _head(self, h: torch.Tensor, cond: torch.Tensor, x_t: torch.Tensor, t_B: torch.Tensor) -> torch.Tensor:
        """Final modulation and output layer: hidden (B, Lg, W) -> velocity tokens (B, Lg, K) at the noisy
        tokens x_t (B, Lg, K). With `overlap`, each token's data estimate x1 = x_t + (1 - t) v is grown into
        the ring of its neighbours (its edge pixels repeated plus learned offsets); the grown estimates are
        overlap-added, and the velocity is the averaged data estimate minus the token's own noise estimate
        x_t - t v (v + the change of the estimate), so the noise part stays per pixel."""
        shift, scale = self.final_ada(cond)[:, None].chunk(2, dim=-1)
        z = self.final_norm(h) * (1 + scale) + shift
        v = self.out(z)
        c = self.config
        if not c.overlap:
            return v
        B, L, K = v.shape
        p, o = c.patch, c.overlap
        q = p + 2 * o
        x1 = x_t + (1 - t_B.to(v.dtype))[:, None, None] * v
        grown = F.pad(x1.reshape(B * L, 3, p, p), (o, o, o, o), mode="replicate")
        grown = grown + self.out_ring(z).reshape(B * L, 3, q, q) * self.ring
        return v + overlap_add(grown.reshape(B, L, 3 * q * q), p, o, c.cells + 2 * c.pad_cells) - x1

    def _layers(self) -> list[_Block]:
        return [cast(_Block, b) for b in self.blocks]

    def _cond(self, t_B: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.time(timestep_embedding(t_B, _TIME_FEATURES).to(like.dtype))

    def _context_embed(self, feats: torch.Tensor, role: torch.Tensor) -> torch.Tensor:
        return self.ctx_in(feats) + self.role(role)

    def encode_context(
        self, feats: torch.Tensor, role: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor
    ) -> ContextState:
        """Run the context stream (B, Lc, ...) alone: each token attends only to the valid tokens of its own
        frame slot (6 c^2 tokens), computed slot by slot, so the cost is linear in the context length."""
        h = self._context_embed(feats, role)
        B, Lc, _ = h.shape
        slot = 6 * self.config.cells**2
        cond = self._cond(torch.ones(B, device=h.device), h)
        angles = self.rotary.angles(pos)
        eye = torch.eye(slot, dtype=torch.bool, device=h.device)
        mask = (valid.reshape(B * (Lc // slot), 1, 1, slot) | eye).expand(-1, 1, slot, slot)
        keys, values = [], []
        for blk in self._layers():
            q, k, v = blk.qkv_of(h, cond, angles)
            keys.append(k)
            values.append(v)
            a = F.scaled_dot_product_attention(_slots(q, slot), _slots(k, slot), _slots(v, slot), attn_mask=mask)
            h = blk.finish(h, _unslots(a, B), cond)
        return ContextState(keys, values, valid)

    def velocity(
        self, gen_feats: torch.Tensor, t_B: torch.Tensor, pos: torch.Tensor, state: ContextState
    ) -> torch.Tensor:
        """Velocity (B, Lg, K) of the generated tokens (features (B, Lg, 2K + p^2)) at flow time t (B,)."""
        h = self.gen_in(gen_feats)
        cond = self._cond(t_B, h)
        angles = self.rotary.angles(pos)
        B, Lg = h.shape[:2]
        keys_ok = torch.cat([torch.ones(B, Lg, dtype=torch.bool, device=h.device), state.valid], dim=1)
        mask = keys_ok[:, None, None, :]
        for blk, k_ctx, v_ctx in zip(self._layers(), state.keys, state.values, strict=True):
            q, k, v = blk.qkv_of(h, cond, angles)
            attn = F.scaled_dot_product_attention(q, torch.cat([k, k_ctx], 2), torch.cat([v, v_ctx], 2), attn_mask=mask)
            h = blk.finish(h, attn, cond)
        return self._head(h, cond, gen_feats[..., : self.config.token_channels], t_B)

    def velocity_full(
        self,
        gen_feats: torch.Tensor,
        t_B: torch.Tensor,
        pos: torch.Tensor,
        ctx: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        valid: torch.Tensor,
    ) -> torch.Tensor:
        """The full-attention ablation: one joint sequence, every token attends to every valid token."""
        feats, role, cpos = ctx
        hg, hc = self.gen_in(gen_feats), self._context_embed(feats, role)
        cg, cc = self._cond(t_B, hg), self._cond(torch.ones_like(t_B), hg)
        ag, ac = self.rotary.angles(pos), self.rotary.angles(cpos)
        B, Lg = hg.shape[:2]
        keys_ok = torch.cat([torch.ones(B, Lg, dtype=torch.bool, device=hg.device), valid], dim=1)[:, None, None, :]
        for blk in self._layers():
            qg, kg, vg = blk.qkv_of(hg, cg, ag)
            qc, kc, vc = blk.qkv_of(hc, cc, ac)
            k, v = torch.cat([kg, kc], 2), torch.cat([vg, vc], 2)
            attn = F.scaled_dot_product_attention(torch.cat([qg, qc], 2), k, v, attn_mask=keys_ok)
            hg, hc = blk.finish(hg, attn[:, :, :Lg], cg), blk.finish(hc, attn[:, :, Lg:], cc)
        return self._head(hg, cg, gen_feats[..., : self.config.token_channels], t_B)
