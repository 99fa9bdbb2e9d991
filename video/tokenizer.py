"""The causal-in-time multi-scale video tokenizer of VideoAR: a light per-frame conv encoder/decoder,
causal temporal mixing of the latents (frame t sees frames <= t), and VAR's multi-scale residual
quantiser per frame (`genmotion.nn.quantizer`, shared with VAR).

Axes: B clips, T frames, C latent channels, H/W pixels, h/w latent cells, l tokens of one scale.
Frames are float (B, T, 3, H, W) in [-1, 1]; token maps are per scale (B, T, l).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from genmotion.errors import InputError
from genmotion.nn.quantizer import MultiScaleQuantizer
from genmotion.nn.vqvae_config import VQVAEConfig
from genmotion.video.config import VideoTokenizerConfig
from genmotion.video.residual import ClipCodes, pinned_codebook, quantize_clip

__all__ = ["CausalTemporalMix", "FrameDecoder", "FrameEncoder", "VideoTokenizer"]


class _Res(nn.Module):
    """x + conv(silu(conv(silu(x)))); norm-free (GroupNorm costs more than the convs at these sizes on CPU)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        with torch.no_grad():  # start close to the identity: no norm layers to tame the residual branch
            self.conv2.weight.mul_(0.3)
            self.conv2.bias.zero_()  # type: ignore[union-attr]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class FrameEncoder(nn.Module):
    """(N, 3, H, W) -> (N, C, H / 2**len(widths), ...): a stride-2 stem to H/2 (no full-resolution layers:
    they would cost most of the compute), then a res block per level and stride-2 convs between levels."""

    def __init__(self, widths: Sequence[int], latent_channels: int) -> None:
        super().__init__()
        w = list(widths)
        layers: list[nn.Module] = [nn.Conv2d(3, w[0], 4, stride=2, padding=1), _Res(w[0])]
        for width, nxt in zip(w, w[1:], strict=False):
            layers += [nn.SiLU(), nn.Conv2d(width, nxt, 4, stride=2, padding=1), _Res(nxt)]
        layers += [nn.SiLU(), nn.Conv2d(w[-1], latent_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x_N3HW: torch.Tensor) -> torch.Tensor:
        return self.net(x_N3HW)


class FrameDecoder(nn.Module):
    """(N, C, h, w) -> (N, 3, H, W): the encoder mirrored (nearest x2 + conv per level); the last conv
    predicts 2x2 pixels per cell at H/2 (pixel shuffle)."""

    def __init__(self, widths: Sequence[int], latent_channels: int) -> None:
        super().__init__()
        w = list(reversed(list(widths)))  # coarsest first
        layers: list[nn.Module] = [nn.Conv2d(latent_channels, w[0], 3, padding=1), _Res(w[0])]
        for width, nxt in zip(w, w[1:], strict=False):
            layers += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(width, nxt, 3, padding=1), _Res(nxt)]
        layers += [nn.SiLU(), nn.Conv2d(w[-1], 3 * 4, 3, padding=1), nn.PixelShuffle(2)]
        self.net = nn.Sequential(*layers)

    def forward(self, z_NChw: torch.Tensor) -> torch.Tensor:
        return self.net(z_NChw)


class CausalTemporalMix(nn.Module):
    """z_t + A z_t + B z_{t-1} (1x1 convs, zero-initialised, so training starts per frame); z_{-1} = z_0.

    Causal in time: frame t never sees a later frame, so video streams frame by frame with one frame of state.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.mix = nn.Conv2d(2 * channels, channels, 1)
        with torch.no_grad():
            self.mix.weight.zero_()
            self.mix.bias.zero_()  # type: ignore[union-attr]

    def forward(self, z_BTChw: torch.Tensor) -> torch.Tensor:
        prev = torch.cat([z_BTChw[:, :1], z_BTChw[:, :-1]], dim=1)  # (B, T, C, h, w), shifted one frame
        B, T = z_BTChw.shape[:2]
        both = torch.cat([z_BTChw, prev], dim=2).flatten(0, 1)
        return z_BTChw + self.mix(both).view_as(z_BTChw)

    def step(self, z_BChw: torch.Tensor, prev_BChw: torch.Tensor | None) -> torch.Tensor:
        """One frame given the previous one's input (None at the first frame): (B, C, h, w)."""
        prev = z_BChw if prev_BChw is None else prev_BChw
        return z_BChw + self.mix(torch.cat([z_BChw, prev], dim=1))


class VideoTokenizer(nn.Module):
    """Frames <-> per-frame multi-scale token maps. The quantiser is VAR's (`image_core.MultiScaleQuantizer`)."""

    def __init__(self, config: VideoTokenizerConfig) -> None:
        super().__init__()
        self.config = c = config
        self.encoder = FrameEncoder(c.widths, c.latent_channels)
        self.encoder_mix = CausalTemporalMix(c.latent_channels)
        self.quantize = MultiScaleQuantizer(self.quantizer_config(c))
        self.decoder_mix = CausalTemporalMix(c.latent_channels)
        self.decoder = FrameDecoder(c.decoder_level_widths, c.latent_channels)
        if c.temporal_residual:
            with torch.no_grad():
                self.quantize.embedding.weight[0].zero_()  # code 0 = "no change" (pinned in every use)

    def codebook(self) -> torch.Tensor:
        """The code vectors (V, C) as every coding and decoding path reads them (code 0 pinned to zero under
        temporal residual coding)."""
        w = self.quantize.embedding.weight
        return pinned_codebook(w) if self.config.temporal_residual else w

    def quantize_clip(self, f_BTChw: torch.Tensor, *, straight_through: bool = False) -> ClipCodes:
        """Temporal residual coding of latents (B, T, C, h, w) (`genmotion.video.residual`); only for
        tokenizers with `temporal_residual`."""
        c = self.config
        if not c.temporal_residual:
            raise ValueError("quantize_clip is the temporal residual path; this tokenizer codes frames on their own")
        return quantize_clip(
            self.codebook(), c.patch_nums, f_BTChw, deadzone=c.deadzone, straight_through=straight_through, beta=c.beta
        )

    @staticmethod
    def quantizer_config(c: VideoTokenizerConfig) -> VQVAEConfig:
        """The image_core config its quantiser reads (vocabulary, channels, scales, phi settings)."""
        return VQVAEConfig(
            vocab_size=c.vocab_size,
            latent_channels=c.latent_channels,
            patch_nums=c.patch_nums,
            quant_resi=c.quant_resi,
            share_quant_resi=c.share_quant_resi,
            beta=c.beta,
        )

    @property
    def patch_nums(self) -> tuple[int, ...]:
        return self.config.patch_nums

    def _check(self, video_BT3HW: torch.Tensor) -> None:
        s = self.config.image_size
        if video_BT3HW.dim() != 5 or tuple(video_BT3HW.shape[2:]) != (3, s, s):
            raise InputError(
                f"video of shape {tuple(video_BT3HW.shape)} does not fit this tokenizer",
                why=f"it reads clips shaped (B, T, 3, {s}, {s}) in [-1, 1]",
                fix=f"resize or crop frames to {s}x{s}",
            )

    def latents(self, video_BT3HW: torch.Tensor) -> torch.Tensor:
        """Continuous latents f before quantisation: (B, T, 3, H, W) -> (B, T, C, h, w)."""
        self._check(video_BT3HW)
        B, T = video_BT3HW.shape[:2]
        x = video_BT3HW.flatten(0, 1)
        if self.config.input_pool > 1:
            x = F.avg_pool2d(x, self.config.input_pool)
        z = self.encoder(x)
        return self.encoder_mix(z.view(B, T, *z.shape[1:]))

    @torch.no_grad()
    def encode(self, video_BT3HW: torch.Tensor) -> list[torch.Tensor]:
        """Per-scale token indices, each (B, T, pn*pn), coarse to fine."""
        f = self.latents(video_BT3HW)
        if self.config.temporal_residual:
            return self.quantize_clip(f).indices
        B, T = f.shape[:2]
        return [idx.view(B, T, -1) for idx in self.quantize.f_to_indices(f.flatten(0, 1).float())]

    def decode_fhat(self, fhat_BTChw: torch.Tensor) -> torch.Tensor:
        """Quantised latents (B, T, C, h, w) -> frames (B, T, 3, H, W) in [-1, 1] (clamped)."""
        B, T = fhat_BTChw.shape[:2]
        z = self.decoder_mix(fhat_BTChw)
        return self.decoder(z.flatten(0, 1)).view(B, T, 3, *self._pixels()).clamp(-1, 1)

    def decode_frame(self, fhat_BChw: torch.Tensor, prev_fhat_BChw: torch.Tensor | None) -> torch.Tensor:
        """Streaming decode of one frame: (B, C, h, w) + the previous frame's f_hat -> (B, 3, H, W) in [-1, 1]."""
        return self.decoder(self.decoder_mix.step(fhat_BChw, prev_fhat_BChw)).clamp(-1, 1)

    def decode_indices(self, indices: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-scale indices (B, T, l) -> frames (B, T, 3, H, W)."""
        return self.decode_fhat(self.indices_to_fhat(indices))

    def indices_to_fhat(self, indices: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-scale indices (B, T, l) -> f_hat (B, T, C, h, w); under temporal residual coding each frame's
        codes add to the frame before."""
        B, T = indices[0].shape[:2]
        fhat = self.quantize.indices_to_fhat([i.flatten(0, 1) for i in indices])
        fhat = fhat.view(B, T, *fhat.shape[1:])
        return fhat.cumsum(dim=1) if self.config.temporal_residual else fhat

    def _pixels(self) -> tuple[int, int]:
        return self.config.image_size, self.config.image_size

    def decode_train(self, fhat_BTChw: torch.Tensor) -> torch.Tensor:
        """Like `decode_fhat` but unclamped, for the reconstruction loss."""
        B, T = fhat_BTChw.shape[:2]
        return self.decoder(self.decoder_mix(fhat_BTChw).flatten(0, 1)).view(B, T, 3, *self._pixels())

    def forward(self, video_BT3HW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: (reconstruction (B, T, 3, H, W) unclamped, VQ loss); straight-through to the encoder."""
        f = self.latents(video_BT3HW)
        if self.config.temporal_residual:
            codes = self.quantize_clip(f, straight_through=True)
            return self.decode_train(codes.fhat), codes.vq_loss
        B, T = f.shape[:2]
        fhat, vq_loss = self.quantize(f.flatten(0, 1))
        return self.decode_train(fhat.view(B, T, *fhat.shape[1:])), vq_loss
