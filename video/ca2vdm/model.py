"""Ca2-VDM-style causal flow video model: continuous latents, chunk-causal space-time attention, flow matching.

The video autoencoder is the causal encoder/decoder of a trained `VideoTokenizer` with the quantiser
bypassed: frames (32x32) -> continuous latents f (C=16, 8x8) -> standardised, p x p patches -> N tokens of
D = C p^2 channels per frame. The flow transformer predicts the velocity of a noisy chunk of frames given
its text (MiniLM embedding, AdaLN with the flow time) and the clean frames before it, which it reads at
flow time `CLEAN_TIME` through a KV cache (Ca2-VDM: one clean forward per chunk, shared by every
denoising step). Positions are frame indices (1-D RoPE) plus a learned embedding of each token's place.

Axes: B batch, T frames, L tokens (whole frames of N), D token channels, E text width.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from genmotion.kv.layered import LayeredKVCache
from genmotion.nn.blocks import ConditionMemo
from genmotion.nn.masks import MaskArg
from genmotion.nn.tiny import TinyTransformer, TinyTransformerConfig, flow_inputs
from genmotion.video.ca2vdm.config import Ca2VDMConfig
from genmotion.video.text import text_statistics
from genmotion.video.tokenizer import VideoTokenizer

__all__ = ["Ca2VDM"]


class Ca2VDM(nn.Module):
    """Frozen autoencoder + flow transformer. `forward` is the velocity model the core flow loop drives
    (bound to a text with `GuidedFlow`); `encode_tokens` / `decode_tokens` convert frames and tokens."""

    latent_mean: torch.Tensor  # (C,) buffers: latent and text standardisation statistics
    latent_std: torch.Tensor
    text_mean: torch.Tensor  # (E,)
    text_std: torch.Tensor

    def __init__(self, config: Ca2VDMConfig) -> None:
        super().__init__()
        self.config = config
        f, D, N = config.flow, config.token_channels, config.tokens_per_frame
        self.tokenizer = VideoTokenizer(config.tokenizer)
        C = config.tokenizer.latent_channels
        self.register_buffer("latent_mean", torch.zeros(C))
        self.register_buffer("latent_std", torch.ones(C))
        self.register_buffer("text_mean", torch.zeros(f.text_dim))
        self.register_buffer("text_std", torch.ones(f.text_dim))
        self.proj_in = nn.Linear(D, f.width)
        self.spatial = nn.Parameter(torch.randn(N, f.width) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(f.cond_dim, f.cond_dim), nn.SiLU(), nn.Linear(f.cond_dim, f.cond_dim))
        self.text_proj = nn.Sequential(nn.Linear(f.text_dim, f.cond_dim), nn.SiLU(), nn.Linear(f.cond_dim, f.cond_dim))
        self.null_text = nn.Parameter(torch.randn(f.text_dim) * 0.02)  # the unconditional text (CFG)
        self.backbone = TinyTransformer(
            TinyTransformerConfig(
                dim=f.width,
                depth=f.depth,
                heads=f.heads,
                mlp_ratio=f.mlp_ratio,
                cond_dim=f.cond_dim,
                rope_base=f.rope_base,
            )
        )
        self.proj_out = nn.Linear(f.width, D)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    # -- the autoencoder side -------------------------------------------------------------------------
    @torch.no_grad()
    def set_latent_statistics(self, f_BTChw: torch.Tensor) -> None:
        self.latent_mean.copy_(f_BTChw.float().mean((0, 1, 3, 4)))
        self.latent_std.copy_(f_BTChw.float().std((0, 1, 3, 4)).clamp_min(1e-3))

    @torch.no_grad()
    def set_text_statistics(self, text_NE: torch.Tensor) -> None:
        """Standardise MiniLM embeddings with the training captions' statistics (its dimensions are tiny)."""
        mean, std = text_statistics(text_NE)
        self.text_mean.copy_(mean)
        self.text_std.copy_(std)

    def encode_tokens(self, video_BT3HW: torch.Tensor) -> torch.Tensor:
        """Frames in [-1, 1] (B, T, 3, H, W) -> standardised latent tokens (B, T, N, D)."""
        f = self.tokenizer.latents(video_BT3HW)
        f = (f - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]
        B, T, C, h, w = f.shape
        p = self.config.flow.patch
        x = f.view(B, T, C, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6)  # (B, T, h/p, w/p, C, p, p)
        return x.reshape(B, T, (h // p) * (w // p), C * p * p)

    def tokens_to_latents(self, x_BTND: torch.Tensor) -> torch.Tensor:
        """Inverse of the patching and standardisation of `encode_tokens`: (B, T, N, D) -> f (B, T, C, h, w)."""
        B, T = x_BTND.shape[:2]
        C, p, s = self.config.tokenizer.latent_channels, self.config.flow.patch, self.config.tokenizer.latent_size
        f = x_BTND.reshape(B, T, s // p, s // p, C, p, p).permute(0, 1, 4, 2, 5, 3, 6).reshape(B, T, C, s, s)
        return f * self.latent_std[:, None, None] + self.latent_mean[:, None, None]

    def decode_tokens(self, x_BTND: torch.Tensor, prev_f_BChw: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens (B, T, N, D) -> frames (B, T, 3, H, W) in [-1, 1]; `prev_f_BChw` is the latent of the frame
        before the first (the decoder mixes each latent with its predecessor's, causally)."""
        f = self.tokens_to_latents(x_BTND)
        frames, prev = [], prev_f_BChw
        for t in range(f.shape[1]):
            frames.append(self.tokenizer.decode_frame(f[:, t], prev))
            prev = f[:, t]
        return torch.stack(frames, dim=1)

    # -- the flow side --------------------------------------------------------------------------------
    def text_condition(self, text_BE: torch.Tensor, keep_B: torch.Tensor | None = None) -> torch.Tensor:
        """MiniLM embeddings (B, E) -> (B, cond_dim); rows where keep_B is False use the null text."""
        text = (text_BE - self.text_mean) / self.text_std
        if keep_B is not None:
            text = torch.where(keep_B[:, None].to(text.device), text, self.null_text.to(text.dtype))
        return self.text_proj(text)

    def null_condition(self, batch: int) -> torch.Tensor:
        return self.text_proj(torch.stack([self.null_text] * batch))  # (B, cond_dim); stack, not a view

    def new_cache(self, batch: int, capacity: int, **kwargs: Any) -> LayeredKVCache:
        return self.backbone.new_cache(batch, capacity, **kwargs)

    def forward(
        self,
        x_BLD: torch.Tensor,
        t_BL: torch.Tensor,
        positions_L: torch.Tensor,
        cond_BE: torch.Tensor,
        *,
        cache: LayeredKVCache | None = None,
        mask: MaskArg = "causal",
        memo: ConditionMemo | None = None,
    ) -> torch.Tensor:
        """Velocity (B, L, D) of tokens x at flow times t (B, L); `cond_BE` from `text_condition`; `memo` only
        while `cond_BE` stays the same (see `ConditionMemo`)."""
        h, cond = flow_inputs(
            x_BLD,
            t_BL,
            proj_in=self.proj_in,
            spatial_NW=self.spatial,
            time_mlp=self.time_mlp,
            cond_dim=self.config.flow.cond_dim,
            extra_BE=cond_BE,
            memo=memo,
        )
        return self.proj_out(self.backbone(h, positions_L, cache=cache, mask=mask, cond=cond))
