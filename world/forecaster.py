"""The VFMF forecaster: a space-time transformer over latent frames (separable attention: spatial within a
frame, then causal temporal per token position, AdaLN on the flow time), trained by conditional flow
matching of the next frame (linear path, velocity x1 - x0) or, as the deterministic baseline, by MSE
regression of it. Causal time makes the context's keys and values independent of the frame being
denoised, so `context_kv` + `step` equal the full forward on its last frame.

Axes: B batch (samples), T frames (context, then the target), N = grid^2 tokens per frame, K latent
channels, D width, H heads, d = D / H.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genmotion.nn.attention import attend
from genmotion.nn.rope import Rotary, apply_rope
from genmotion.nn.tiny import timestep_embedding
from genmotion.sampling.flow import flow_path, velocity_target
from genmotion.world.config import ForecasterConfig

__all__ = ["KV", "SpaceTimeBlock", "SpaceTimeForecaster", "forecast_loss"]

KV = tuple[torch.Tensor, torch.Tensor]  # temporal keys, values (B N, H, T, d)


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class SpaceTimeBlock(nn.Module):
    """Spatial attention, causal temporal attention (RoPE over frame positions), MLP; each AdaLN-modulated
    by the frame's time embedding and gated (gates start at zero)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.mod = nn.Linear(width, 9 * width)
        nn.init.zeros_(self.mod.weight)
        nn.init.zeros_(self.mod.bias)
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.space_qkv, self.space_proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.time_qkv, self.time_proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        self.rope = Rotary(width // heads)

    def _split(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        L, S = qkv.shape[:2]
        q, k, v = qkv.view(L, S, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        return q, k, v  # (L, H, S, d)

    def forward(
        self, x_BTND: torch.Tensor, c_BTD: torch.Tensor, positions_T: torch.Tensor, past: KV | None = None
    ) -> tuple[torch.Tensor, KV]:
        """-> (x, this call's temporal (k, v)). `past` holds earlier frames' (k, v): then the T new frames
        attend to all of them and causally among themselves."""
        B, T, N, D = x_BTND.shape
        mods = self.mod(c_BTD)[:, :, None].chunk(9, dim=-1)  # 9 x (B, T, 1, D)
        h = _modulate(self.norm(x_BTND), mods[0], mods[1]).reshape(B * T, N, D)
        q, k, v = self._split(self.space_qkv(h))
        a = attend(q, k, v).transpose(1, 2).reshape(B, T, N, D)
        x_BTND = x_BTND + mods[2] * self.space_proj(a)
        h = _modulate(self.norm(x_BTND), mods[3], mods[4]).permute(0, 2, 1, 3).reshape(B * N, T, D)
        q, k, v = self._split(self.time_qkv(h))
        angles = self.rope.angles(positions_T.to(x_BTND.device))
        q, k = apply_rope(q, angles), apply_rope(k, angles)
        new = (k, v)
        if past is None:
            a = attend(q, k, v, is_causal=T > 1)
        else:
            P = past[0].shape[2]
            keys, values = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
            mask = None
            if T > 1:
                mask = torch.ones(T, P + T, dtype=torch.bool, device=q.device).tril(P)
            a = attend(q, keys, values, mask=mask)
        a = a.transpose(1, 2).reshape(B, N, T, D).permute(0, 2, 1, 3)
        x_BTND = x_BTND + mods[5] * self.time_proj(a)
        x_BTND = x_BTND + mods[8] * self.mlp(_modulate(self.norm(x_BTND), mods[6], mods[7]))
        return x_BTND, new


class SpaceTimeForecaster(nn.Module):
    """(B, T, N, K) latent frames + flow times (B, T) + frame positions (T,) -> (B, T, N, K) outputs; the last
    frame's output is the velocity (flow) or the predicted next frame (regression)."""

    def __init__(self, config: ForecasterConfig) -> None:
        super().__init__()
        c = self.config = config
        self.embed = nn.Linear(c.latent_dim, c.width)
        self.space_pos = nn.Parameter(torch.randn(1, 1, c.grid**2, c.width) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(c.width, c.width), nn.SiLU(), nn.Linear(c.width, c.width))
        self.blocks = nn.ModuleList(SpaceTimeBlock(c.width, c.heads, c.mlp_ratio) for _ in range(c.depth))
        self.final_mod = nn.Linear(c.width, 2 * c.width)
        self.final_norm = nn.LayerNorm(c.width, elementwise_affine=False, eps=1e-6)
        self.head = nn.Linear(c.width, c.latent_dim)
        for layer in (self.final_mod, self.head):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def _cond(self, t_BT: torch.Tensor) -> torch.Tensor:
        emb = timestep_embedding(t_BT, self.config.width).to(self.embed.weight.dtype)
        return self.time_mlp(emb)

    def _out(self, x_BTND: torch.Tensor, c_BTD: torch.Tensor) -> torch.Tensor:
        shift, scale = self.final_mod(F.silu(c_BTD))[:, :, None].chunk(2, dim=-1)
        return self.head(_modulate(self.final_norm(x_BTND), shift, scale))

    def forward(self, x_BTNK: torch.Tensor, t_BT: torch.Tensor, positions_T: torch.Tensor) -> torch.Tensor:
        c = self._cond(t_BT)
        x = self.embed(x_BTNK) + self.space_pos
        for block in self.blocks:
            x, _ = block(x, c, positions_T)
        return self._out(x, c)

    def context_kv(self, context_BTNK: torch.Tensor, positions_T: torch.Tensor) -> list[KV]:
        """Per block, the temporal (k, v) of clean context frames (flow time 1)."""
        B, T = context_BTNK.shape[:2]
        c = self._cond(torch.ones(B, T, device=context_BTNK.device))
        x, kvs = self.embed(context_BTNK) + self.space_pos, []
        for block in self.blocks:
            x, kv = block(x, c, positions_T)
            kvs.append(kv)
        return kvs

    def step(self, x_BNK: torch.Tensor, t_B: torch.Tensor, position: int, kvs: list[KV]) -> torch.Tensor:
        """Output (B, N, K) for one frame at `position` after the context whose (k, v) are `kvs`."""
        c = self._cond(t_B[:, None])
        x = self.embed(x_BNK[:, None]) + self.space_pos
        pos = torch.tensor([position], device=x_BNK.device)
        for block, kv in zip(self.blocks, kvs, strict=True):
            x, _ = block(x, c, pos, past=kv)
        return self._out(x, c)[:, 0]


def forecast_loss(
    model: Any,
    latents_BLNK: torch.Tensor,
    positions_L: torch.Tensor,
    generator: torch.Generator | None,
    *,
    t_B: torch.Tensor | None = None,
    x0: torch.Tensor | None = None,
) -> torch.Tensor:
    """Loss on the last frame of each sequence given the ones before it. flow: t ~ U(0, 1), x0 ~ N(0, I)
    (or the given `t_B`, `x0`), x_t = (1 - t) x0 + t x1, MSE(v, x1 - x0); regression: the target slot is
    zeros at t = 0, MSE(out, x1)."""
    B = latents_BLNK.shape[0]
    context, x1 = latents_BLNK[:, :-1], latents_BLNK[:, -1]
    ones = torch.ones(B, context.shape[1], device=x1.device)
    if model.config.objective == "regression":
        t = torch.zeros(B, device=x1.device)
        slot, target = torch.zeros_like(x1), x1
    else:
        t = torch.rand(B, generator=generator).to(x1.device) if t_B is None else t_B
        x0 = torch.randn(x1.shape, generator=generator).to(x1) if x0 is None else x0
        slot, target = flow_path(x0, x1, t[:, None, None]), velocity_target(x0, x1)
    out = model(torch.cat([context, slot[:, None]], dim=1), torch.cat([ones, t[:, None]], dim=1), positions_L)
    return F.mse_loss(out[:, -1], target)
