"""Multi-scale residual vector quantiser of VAR (official `VectorQuantizer2`), shared by VAR and VideoAR.

Per scale k of K (coarse to fine): area-downsample the residual to pn x pn, pick the nearest code,
bicubic-upsample the code map to full size (or, with `resample: spectral`, keep and restore the pn x pn lowest
frequencies: `genmotion.nn.resample`), apply phi_k (a shared 3x3 conv blend picked by the
nearest tick to k/(K-1)), add to f_hat and subtract from the residual.

Axis legend: B batch, C = Cvae latent channels, H/W finest latent size (= patch_nums[-1]),
h/w one scale's size, l = h*w tokens of one scale, L tokens of all scales, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genmotion.nn.resample import resample_down, resample_up
from genmotion.nn.vqvae_config import VQVAEConfig

__all__ = ["MultiScaleQuantizer", "Phi", "PhiNonShared", "PhiPartiallyShared", "PhiShared", "phi_ticks"]


class Phi(nn.Conv2d):
    """phi(h) = (1 - r) h + r conv3x3(h): the residual refinement applied to each upsampled code map."""

    def __init__(self, channels: int, ratio: float) -> None:
        super().__init__(channels, channels, kernel_size=3, stride=1, padding=1)
        self.resi_ratio = abs(ratio)

    def forward(self, h_BChw: torch.Tensor) -> torch.Tensor:
        return h_BChw.mul(1 - self.resi_ratio) + super().forward(h_BChw).mul(self.resi_ratio)


def phi_ticks(count: int) -> np.ndarray:
    """Positions in [0, 1] the `count` shared phis stand for (official: tighter spacing when there are 4)."""
    pad = 1 / 3 / count if count == 4 else 1 / 2 / count
    return np.linspace(pad, 1 - pad, count)


def _nearest_tick(ticks: np.ndarray, at: float) -> int:
    # Scales 2 and 7 of 10 sit exactly between two ticks; numpy's float64 rounding (as in the official
    # code) breaks those ties, so the computation is kept identical rather than "simplified".
    return int(np.argmin(np.abs(ticks - at)))


class PhiShared(nn.Module):
    """One phi for every scale (`share_quant_resi=1`): key `quant_resi.qresi.*`."""

    def __init__(self, qresi: nn.Module) -> None:
        super().__init__()
        self.qresi = qresi

    def pick(self, at: float) -> nn.Module:
        return self.qresi


class PhiPartiallyShared(nn.Module):
    """n phis shared by the K scales by nearest tick (`share_quant_resi=n`): key `quant_resi.qresi_ls.{i}.*`."""

    def __init__(self, qresi_ls: nn.ModuleList) -> None:
        super().__init__()
        self.qresi_ls = qresi_ls
        self.ticks = phi_ticks(len(qresi_ls))

    def pick(self, at: float) -> nn.Module:
        return self.qresi_ls[_nearest_tick(self.ticks, at)]


class PhiNonShared(nn.ModuleList):
    """One phi per scale (`share_quant_resi=0`): key `quant_resi.{i}.*`."""

    def __init__(self, qresi: list[nn.Module]) -> None:
        super().__init__(qresi)
        self.ticks = phi_ticks(len(qresi))

    def pick(self, at: float) -> nn.Module:
        return self[_nearest_tick(self.ticks, at)]


class MultiScaleQuantizer(nn.Module):
    """Residual VQ over the scales of `cfg.patch_nums`; owns the codebook `embedding` (V, Cvae)."""

    ema_vocab_hit_SV: torch.Tensor

    def __init__(self, cfg: VQVAEConfig) -> None:
        super().__init__()
        self.vocab_size, self.Cvae = cfg.vocab_size, cfg.latent_channels
        self.patch_nums = tuple(cfg.patch_nums)
        self.using_znorm, self.beta = cfg.using_znorm, cfg.beta
        self.resample = cfg.resample  # "spatial" (area down, bicubic up) or "spectral" (Fourier low-pass)
        K, r = len(self.patch_nums), cfg.quant_resi

        def make() -> nn.Module:
            return Phi(self.Cvae, r) if abs(r) > 1e-6 else nn.Identity()

        self.quant_resi: PhiShared | PhiPartiallyShared | PhiNonShared
        if cfg.share_quant_resi == 0:
            self.quant_resi = PhiNonShared([make() for _ in range(K)])
        elif cfg.share_quant_resi == 1:
            self.quant_resi = PhiShared(make())
        else:
            self.quant_resi = PhiPartiallyShared(nn.ModuleList([make() for _ in range(cfg.share_quant_resi)]))
        # Codebook usage statistics of tokenizer training; kept for key-for-key compatibility.
        self.register_buffer("ema_vocab_hit_SV", torch.zeros(K, self.vocab_size))
        self.embedding = nn.Embedding(self.vocab_size, self.Cvae)

    @property
    def num_scales(self) -> int:
        return len(self.patch_nums)

    def phi_index(self, scale_index: int) -> int:
        """Which shared phi serves scale `scale_index` (only meaningful for partial sharing)."""
        ticks = getattr(self.quant_resi, "ticks", np.zeros(1))
        return _nearest_tick(ticks, self._at(scale_index))

    def _at(self, si: int) -> float:
        return si / (self.num_scales - 1) if self.num_scales > 1 else 0.0

    def phi(self, si: int, h_BCHW: torch.Tensor) -> torch.Tensor:
        """Apply the phi of scale `si` to an upsampled code map."""
        return self.quant_resi.pick(self._at(si))(h_BCHW)

    def _nearest(self, z_NC: torch.Tensor) -> torch.Tensor:
        codes_VC = self.embedding.weight.detach()
        if self.using_znorm:
            return torch.argmax(F.normalize(z_NC, dim=-1) @ F.normalize(codes_VC, dim=-1).T, dim=1)
        dist_NV = z_NC.square().sum(1, keepdim=True) + codes_VC.square().sum(1) - 2 * z_NC @ codes_VC.T
        return torch.argmin(dist_NV, dim=1)

    def _upsampled_code(self, si: int, idx_Bhw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        h_BChw = self.embedding(idx_Bhw).permute(0, 3, 1, 2)
        if si != self.num_scales - 1:
            h_BChw = resample_up(h_BChw, size, self.resample)
        return self.phi(si, h_BChw.contiguous())

    def _residual_scales(self, f_BCHW: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Quantise every scale; returns per-scale indices (B, l) and the running f_hat after each scale."""
        B, C, H, W = f_BCHW.shape
        if (H, W) != (self.patch_nums[-1],) * 2:
            raise ValueError(f"latent is {H}x{W} but the finest scale of {self.patch_nums} is {self.patch_nums[-1]}")
        f_rest = f_BCHW.detach().float().clone()
        f_hat = torch.zeros_like(f_rest)
        indices, f_hats = [], []
        for si, pn in enumerate(self.patch_nums):
            rest = f_rest if si == self.num_scales - 1 else resample_down(f_rest, (pn, pn), self.resample)
            idx_N = self._nearest(rest.permute(0, 2, 3, 1).reshape(-1, C))
            h_BCHW = self._upsampled_code(si, idx_N.view(B, pn, pn), (H, W))
            f_hat = f_hat + h_BCHW
            f_rest = f_rest - h_BCHW
            indices.append(idx_N.view(B, pn * pn))
            f_hats.append(f_hat)
        return indices, f_hats

    @torch.no_grad()
    def f_to_indices(self, f_BCHW: torch.Tensor) -> list[torch.Tensor]:
        """Latent (B, C, H, W) -> per-scale token indices, each (B, pn*pn), coarse to fine."""
        return self._residual_scales(f_BCHW)[0]

    @torch.no_grad()
    def f_to_fhats(self, f_BCHW: torch.Tensor) -> list[torch.Tensor]:
        """Latent -> the accumulated f_hat (B, C, H, W) after each scale."""
        return self._residual_scales(f_BCHW)[1]

    def indices_to_fhat(self, indices_Bl: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-scale indices (B, pn*pn) for all K scales -> f_hat (B, C, H, W), float32."""
        if len(indices_Bl) != self.num_scales:
            raise ValueError(f"need indices for {self.num_scales} scales, got {len(indices_Bl)}")
        B, H = indices_Bl[0].shape[0], self.patch_nums[-1]
        f_hat = torch.zeros(B, self.Cvae, H, H, device=indices_Bl[0].device)
        for si, (idx_Bl, pn) in enumerate(zip(indices_Bl, self.patch_nums, strict=True)):
            f_hat = f_hat + self._upsampled_code(si, idx_Bl.view(B, pn, pn), (H, H))
        return f_hat

    def idxBl_to_var_input(self, gt_indices_Bl: Sequence[torch.Tensor]) -> torch.Tensor:
        """Teacher-forcing input of the transformer: (B, L - first_l, Cvae), float32.

        For each scale but the last: add its upsampled, phi-refined codes to f_hat, then area-downsample
        f_hat to the next scale's size. Token i of scale k+1 sees f_hat accumulated over scales <= k.
        """
        B, C, H = gt_indices_Bl[0].shape[0], self.Cvae, self.patch_nums[-1]
        f_hat = torch.zeros(B, C, H, H, device=gt_indices_Bl[0].device)
        next_scales = []
        for si in range(self.num_scales - 1):
            pn, pn_next = self.patch_nums[si], self.patch_nums[si + 1]
            code_BChw = self.embedding(gt_indices_Bl[si]).transpose(1, 2).reshape(B, C, pn, pn)
            f_hat = f_hat + self.phi(si, resample_up(code_BChw, (H, H), self.resample))
            next_scales.append(resample_down(f_hat, (pn_next, pn_next), self.resample).view(B, C, -1).transpose(1, 2))
        if not next_scales:
            return torch.zeros(B, 0, C, device=gt_indices_Bl[0].device)
        return torch.cat(next_scales, dim=1)

    def next_autoregressive_input(
        self, si: int, f_hat_BCHW: torch.Tensor, h_BChw: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference step: add scale `si`'s code map (B, C, h, w) to f_hat; return (f_hat, next input map).

        The next input map is f_hat area-downsampled to scale si+1 (or f_hat itself after the last scale).
        """
        H = self.patch_nums[-1]
        if si != self.num_scales - 1:
            f_hat_BCHW = f_hat_BCHW + self.phi(si, resample_up(h_BChw, (H, H), self.resample))
            pn = self.patch_nums[si + 1]
            return f_hat_BCHW, resample_down(f_hat_BCHW, (pn, pn), self.resample)
        f_hat_BCHW = f_hat_BCHW + self.phi(si, h_BChw)
        return f_hat_BCHW, f_hat_BCHW

    def forward(self, f_BCHW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenizer training: (straight-through f_hat (B, C, H, W), VQ loss scalar).

        The loss averages over scales: beta * ||sg(f_hat) - f||^2 (commitment) + ||f_hat - sg(f)||^2.
        """
        f = f_BCHW.float()
        B, C, H, W = f.shape
        f_rest, f_hat = f.detach().clone(), torch.zeros_like(f)
        loss = f.new_zeros(())
        for si, pn in enumerate(self.patch_nums):
            rest = f_rest if si == self.num_scales - 1 else resample_down(f_rest, (pn, pn), self.resample)
            idx_N = self._nearest(rest.permute(0, 2, 3, 1).reshape(-1, C))
            if self.training:  # codebook usage per scale, read by dead-code restarts in tokenizer training
                hits = torch.bincount(idx_N, minlength=self.vocab_size).float()
                self.ema_vocab_hit_SV[si].mul_(0.9).add_(hits, alpha=0.1)
            h_BCHW = self._upsampled_code(si, idx_N.view(B, pn, pn), (H, W))
            f_hat = f_hat + h_BCHW
            f_rest = f_rest - h_BCHW.detach()
            loss = loss + self.beta * F.mse_loss(f_hat.detach(), f) + F.mse_loss(f_hat, f.detach())
        f_hat_st = (f_hat.detach() - f.detach()) + f  # straight-through to the encoder
        return f_hat_st, loss / self.num_scales
