"""The tiny subject of `genmotion bench cache`: a seeded `TinyFlowModel` fitted to toy travelling waves.

Flow matching Ca2-VDM style (a clean prefix at `CLEAN_TIME`, then one noisy chunk), so its attention
follows the data rather than random weights; and the closed-form matmul FLOPs of its forwards.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from genmotion.cache import FrameLayout
from genmotion.nn.tiny import TinyFlowModel, TinyFlowModelConfig
from genmotion.sampling.flow import CLEAN_TIME, flow_path, velocity_target

if TYPE_CHECKING:
    from genmotion.bench.cache import CacheBenchConfig

__all__ = ["fit_flow_model", "flow_model_flops", "policy_flops", "seeded_tiny_flow_model", "travelling_waves"]


# ---- the model and its toy data ----------------------------------------------------------------
def seeded_tiny_flow_model(config: TinyFlowModelConfig, seed: int, *, spatial_std: float = 0.02) -> TinyFlowModel:
    """A TinyFlowModel whose weights depend only on `seed` (drawn from a generator, no global seeding).

    Linear layers get PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the in-frame token embedding
    gets N(0, spatial_std) (the model's own init is 0.02; the bench uses a larger one so that a short fit
    learns to match tokens across frames).
    """
    model = TinyFlowModel(config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.in_features)
                module.weight.uniform_(-bound, bound, generator=gen)
                if module.bias is not None:
                    module.bias.uniform_(-bound, bound, generator=gen)
        model.spatial.normal_(0.0, spatial_std, generator=gen)
    return model.eval()


def travelling_waves(batch: int, frames: int, layout: FrameLayout, generator: torch.Generator) -> torch.Tensor:
    """(B, F, N, C) toy latents: channel c is a sine of spatial frequency c + 1 moving at a per-clip speed."""
    N, C = layout.tokens_per_frame, layout.channels
    amp = 0.5 + 0.5 * torch.rand(batch, 1, 1, C, generator=generator)
    phase = 2 * math.pi * torch.rand(batch, 1, 1, C, generator=generator)
    speed = 1.2 * torch.rand(batch, 1, 1, C, generator=generator) - 0.6  # radians per frame
    space = (2 * math.pi / N) * torch.arange(N).view(1, 1, N, 1) * torch.arange(1, C + 1).view(1, 1, 1, C)
    time_ = torch.arange(frames, dtype=torch.float32).view(1, frames, 1, 1)
    return amp * torch.sin(space + phase + speed * time_)


def fit_flow_model(
    model: TinyFlowModel, layout: FrameLayout, cfg: CacheBenchConfig, generator: torch.Generator
) -> list[float]:
    """Flow matching on chunks after a clean prefix of a random number of chunks; returns the loss curve."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    N, F = layout.tokens_per_frame, layout.frames_per_chunk
    losses = []
    model.train()
    for _ in range(cfg.fit_steps):
        clips = travelling_waves(cfg.fit_batch, cfg.fit_frames, layout, generator)
        prefix = F * int(torch.randint(0, cfg.fit_frames // F, (1,), generator=generator))
        C = layout.channels
        x1 = clips[:, prefix : prefix + F].reshape(cfg.fit_batch, F * N, C)
        x0 = torch.randn(x1.shape, generator=generator)
        t = torch.rand(cfg.fit_batch, 1, 1, generator=generator)
        context = clips[:, :prefix].reshape(cfg.fit_batch, prefix * N, C)
        inputs = torch.cat([context, flow_path(x0, x1, t)], dim=1)
        t_BL = torch.cat([torch.full((cfg.fit_batch, prefix * N), CLEAN_TIME), t.view(-1, 1).expand(-1, F * N)], 1)
        v = model(inputs, t_BL, layout.frame_ids(0, inputs.shape[1]))[:, prefix * N :]
        loss = (v - velocity_target(x0, x1)).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# ---- FLOP counts ---------------------------------------------------------------------------------
def flow_model_flops(config: TinyFlowModelConfig, tokens: int, visible_pairs: int) -> int:
    """Matmul FLOPs of one TinyFlowModel forward over `tokens` new tokens with `visible_pairs` (query, key) pairs."""
    t = config.transformer
    hidden = int(t.dim * t.mlp_ratio)
    per_token = 2 * config.channels * t.dim * 2 + 2 * 2 * t.cond_dim**2  # proj in/out, time MLP
    per_token += t.depth * 2 * (6 * t.cond_dim * t.dim + 4 * t.dim * t.dim + 2 * t.dim * hidden)
    return tokens * per_token + t.depth * 2 * 2 * visible_pairs * t.dim


def policy_flops(
    config: TinyFlowModelConfig, layout: FrameLayout, *, chunks: int, steps: int, prefix_frames: int, shared: bool
) -> int:
    """Useful FLOPs of a whole generation: `Recompute` (shared=False) or `SharedClean` (shared=True)."""
    N, F = layout.tokens_per_frame, layout.frames_per_chunk
    pairs = lambda first, end: N * N * sum(f + 1 for f in range(first, end))
    total = flow_model_flops(config, prefix_frames * N, pairs(0, prefix_frames)) if shared and prefix_frames else 0
    for i in range(chunks):
        s = prefix_frames + i * F
        if shared:
            one = flow_model_flops(config, F * N, pairs(s, s + F))
            total += one * (steps + (1 if i < chunks - 1 else 0))
        else:
            total += steps * flow_model_flops(config, (s + F) * N, pairs(0, s + F))
    return total
