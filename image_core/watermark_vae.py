"""The watermark tokenizer pair of an LBW-watermarked VAR checkpoint: its own encoder and decoder (trained to be
cycle-consistent at the watermarked scales, `genmotion.image_core.watermark_train`) around the model's frozen
multi-scale quantizer, shipped beside the weights as `watermark_vae.safetensors` and loaded only for watermarking.

Plain sampling never touches it: it decodes watermarked samples and re-tokenises images for detection.

Axes: B batch, C latent channels, H/W latent size, l tokens of one scale, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from genmotion.errors import InputError
from genmotion.nn.quantizer import MultiScaleQuantizer
from genmotion.nn.resample import resample_down
from genmotion.nn.vqvae import VQVAE
from genmotion.nn.vqvae_config import VQVAEConfig

__all__ = [
    "WATERMARK_VAE_NAME",
    "WatermarkPair",
    "load_watermark_pair",
    "save_watermark_pair",
    "scale_logits",
    "watermark_tokenizer",
]

WATERMARK_VAE_NAME = "watermark_vae.safetensors"


class WatermarkPair(nn.Module):
    """Encoder, quant_conv, post_quant_conv and decoder of a `VQVAE` (the same keys), without the quantizer: the
    part of the tokenizer that watermarking replaces. Built from the model's `VQVAEConfig`."""

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        self.config = config
        # the tokenizer's own modules and keys, so the two cannot drift apart; its quantizer is dropped
        vae = VQVAE(config)
        self.encoder, self.decoder = vae.encoder, vae.decoder
        self.quant_conv, self.post_quant_conv = vae.quant_conv, vae.post_quant_conv

    @classmethod
    def from_vae(cls, vae: VQVAE) -> WatermarkPair:
        """A pair starting as a copy of `vae`'s own encoder and decoder (the fine-tuning start)."""
        pair = cls(vae.config)
        pair.load_state_dict({k: v for k, v in vae.state_dict().items() if not k.startswith("quantize.")})
        return pair.to(next(vae.parameters()).device)

    def image_to_latent(self, image_B3HW: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> continuous latent f (B, C, h, w) before quantisation."""
        return self.quant_conv(self.encoder(image_B3HW))

    def decode_raw(self, f_hat_BCHW: torch.Tensor) -> torch.Tensor:
        """Quantised latent -> image (B, 3, H, W), not clamped (training keeps the gradient at the range's edge)."""
        return self.decoder(self.post_quant_conv(f_hat_BCHW))


def watermark_tokenizer(vae: VQVAE, pair: WatermarkPair) -> VQVAE:
    """A `VQVAE` made of `pair`'s encoder and decoder and `vae`'s quantizer (shared, not copied: the codes, and so
    the code groups of the watermark, are the model's)."""
    out = VQVAE(vae.config)
    for name in ("encoder", "decoder", "quant_conv", "post_quant_conv"):
        setattr(out, name, getattr(pair, name))
    out.quantize = vae.quantize
    return out.eval()


def load_watermark_pair(directory: str | Path, config: VQVAEConfig) -> WatermarkPair | None:
    """The pair shipped in checkpoint `directory` as `watermark_vae.safetensors` (fp32), or None without one."""
    from safetensors.torch import load_file

    path = Path(directory) / WATERMARK_VAE_NAME
    if not path.is_file():
        return None
    pair = WatermarkPair(config)
    try:
        state = load_file(str(path))
    except Exception as e:  # safetensors raises several types for truncated or foreign files
        raise InputError(f"cannot read {path}", why=f"{type(e).__name__}: {e}", fix="re-export the file") from e
    ref = pair.state_dict()
    if set(state) != set(ref) or any(state[k].shape != ref[k].shape for k in ref):
        missing, extra = sorted(set(ref) - set(state)), sorted(set(state) - set(ref))
        raise InputError(
            f"{path} does not fit this checkpoint's tokenizer",
            why=f"missing keys {missing[:3]}, unexpected keys {extra[:3]} (or shapes differ)",
            fix="train it for this checkpoint (configs/image/var_toy_watermark.yaml) or delete it",
        )
    pair.load_state_dict({k: v.float() for k, v in state.items()})
    return pair.eval()


def save_watermark_pair(pair: WatermarkPair, directory: str | Path) -> Path:
    """Write `pair` into checkpoint `directory` as bf16 `watermark_vae.safetensors`; returns the file."""
    from safetensors.torch import save_file

    path = Path(directory) / WATERMARK_VAE_NAME
    save_file({k: v.detach().to("cpu", torch.bfloat16).contiguous() for k, v in pair.state_dict().items()}, str(path))
    return path


def scale_logits(quantize: MultiScaleQuantizer, f_BCHW: torch.Tensor, indices_Bl: Sequence[torch.Tensor],
                 temperature: float) -> list[torch.Tensor]:  # fmt: skip
    """Per scale (B, l, V): minus the squared distance of the residual to every code over `temperature`,
    differentiable in the latent f (B, C, H, W). Teacher-forced: the residual of scale k subtracts the codes
    `indices_Bl` gives for the scales before it (what the encoder must read if it read them right), so a
    cross-entropy against `indices_Bl` trains the encoder to give the codes back. The argmax of scale k's
    logits is what `MultiScaleQuantizer.f_to_indices` picks when the earlier scales were read right."""
    B, C, H, W = f_BCHW.shape
    codes_VC = quantize.embedding.weight.detach()
    f_rest = f_BCHW.float()
    out = []
    for si, (idx_Bl, pn) in enumerate(zip(indices_Bl, quantize.patch_nums, strict=True)):
        rest = f_rest if si == quantize.num_scales - 1 else resample_down(f_rest, (pn, pn), quantize.resample)
        z_BlC = rest.permute(0, 2, 3, 1).reshape(B, pn * pn, C)
        dist_BlV = z_BlC.square().sum(-1, keepdim=True) + codes_VC.square().sum(1) - 2 * z_BlC @ codes_VC.T
        out.append(-dist_BlV / temperature)
        with torch.no_grad():
            h_BCHW = quantize._upsampled_code(si, idx_Bl.view(B, pn, pn), (H, W))
        f_rest = f_rest - h_BCHW
    return out
