"""FlexVAR's tokenizer: a single-scale VQ with an L2-normalised codebook (LlamaGen-style), whose one quantiser
also tokenises the encoder latent area-downsampled to any coarser size (FlexVAR, Jiao et al., 2025).

The shape is the VAR tokenizer's (`genmotion.nn.vqvae.VQVAE`: encoder, quant_conv, quantiser, post_quant_conv,
decoder; the same state-dict keys), with one scale and no phi, so the tokenizer task trains it unchanged. A code
is a unit vector: the nearest code is the one of highest cosine similarity, and what the decoder reads is the
normalised code.

Axis legend: B batch, C latent channels, H/W the full latent size, h/w one scale's size, l = h*w, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from genmotion.nn.quantizer import MultiScaleQuantizer
from genmotion.nn.vqvae import VQVAE
from genmotion.nn.vqvae_config import VQVAEConfig

__all__ = ["FlexVQVAE", "NormalizedQuantizer", "check_flex_tokenizer_config"]


def check_flex_tokenizer_config(config: VQVAEConfig) -> None:
    """ValueError unless `config` is single-scale (one entry in patch_nums), without phi, with cosine lookup."""
    if len(config.patch_nums) != 1 or config.quant_resi != 0.0 or not config.using_znorm:
        raise ValueError(
            "a FlexVAR tokenizer has one scale, no phi and a cosine codebook: need patch_nums of one entry, "
            f"quant_resi: 0.0 and using_znorm: true, got patch_nums={config.patch_nums}, "
            f"quant_resi={config.quant_resi}, using_znorm={config.using_znorm}"
        )


class NormalizedQuantizer(MultiScaleQuantizer):
    """Single-scale VQ over unit vectors: codes are `normalize(embedding.weight)`, lookup by cosine similarity.

    It keeps `MultiScaleQuantizer`'s interface (one scale), so codebook EMA updates and dead-code restarts of
    the tokenizer task apply unchanged (a code moved onto a raw latent vector is normalised when read).
    """

    def __init__(self, config: VQVAEConfig) -> None:
        check_flex_tokenizer_config(config)
        super().__init__(config)

    def codes(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (...) -> unit code vectors (..., C)."""
        return F.normalize(self.embedding(idx), dim=-1)

    def _upsampled_code(self, si: int, idx_Bhw: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self.codes(idx_Bhw).permute(0, 3, 1, 2).contiguous()  # B, C, h, w: one scale, nothing to upsample

    def nearest_map(self, f_BChw: torch.Tensor) -> torch.Tensor:
        """Latent map (B, C, h, w) of any size -> token ids (B, h*w) of the codes nearest in angle."""
        B, C, h, w = f_BChw.shape
        return self._nearest(f_BChw.float().permute(0, 2, 3, 1).reshape(-1, C)).view(B, h * w)

    def code_map(self, idx_Bl: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Token ids (B, h*w) -> unit code map (B, C, h, w)."""
        return self.codes(idx_Bl).transpose(1, 2).reshape(idx_Bl.shape[0], self.Cvae, height, width)

    def forward(self, f_BCHW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenizer training: (straight-through code map (B, C, H, W), VQ loss) on the normalised latent."""
        z = F.normalize(f_BCHW.float(), dim=1)
        idx = self.nearest_map(z)
        if self.training:
            hits = torch.bincount(idx.flatten(), minlength=self.vocab_size).float()
            self.ema_vocab_hit_SV[0].mul_(0.9).add_(hits, alpha=0.1)
        q = self.code_map(idx, z.shape[2], z.shape[3])
        loss = self.beta * F.mse_loss(q.detach(), z) + F.mse_loss(q, z.detach())
        return (q.detach() - z.detach()) + z, loss


class FlexVQVAE(VQVAE):
    """`VQVAE` with a `NormalizedQuantizer`; `scale_indices` gives FlexVAR's ground-truth tokens at any sizes."""

    quantize: NormalizedQuantizer

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__(config)
        self.quantize = NormalizedQuantizer(config)

    @property
    def latent_size(self) -> int:
        """Side of the latent the tokenizer was trained at (its image size / downsampling)."""
        return self.config.patch_nums[0]

    @torch.no_grad()
    def scale_indices(self, image_B3HW: torch.Tensor, sizes: Sequence[int]) -> list[torch.Tensor]:
        """Images (B, 3, H, W) in [-1, 1] -> for each side s in `sizes`, the ids (B, s*s) of the latent
        area-downsampled to s x s, each scale quantised on its own (no residual)."""
        f = self.image_to_latent(image_B3HW).float()
        return [self.quantize.nearest_map(F.interpolate(f, size=(s, s), mode="area")) for s in sizes]

    def indices_to_image(self, idx_Bl: torch.Tensor, side: int) -> torch.Tensor:
        """The last scale's ids (B, side*side) -> image (B, 3, side*d, side*d) in [-1, 1] (d = downsampling)."""
        return self.fhat_to_image(self.quantize.code_map(idx_Bl, side, side))
