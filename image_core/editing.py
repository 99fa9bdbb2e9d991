"""Zero-shot in-painting, out-painting and class-conditional editing for VAR, as a sampler hook.

VAR (Tian et al., 2024, §5.3) edits without training: the image is tokenised at every scale, and while
sampling, the tokens of the region to keep are forced to the image's own tokens; only the rest is
generated (with the requested class: that is class-conditional editing). Per scale, the keep mask is
area-resized to the scale's grid and a token is forced where the kept share reaches `threshold`.
In-painting keeps the outside of a hole; out-painting keeps an inner region and regenerates the border.

Axes: B batch, l tokens of one scale, V vocabulary, H/W image size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from genmotion.errors import InputError, UsageError
from genmotion.nn.vqvae import VQVAE
from genmotion.sampling.logits import force_tokens

__all__ = ["TokenForcing", "inpaint_forcing", "prepare_inpaint", "scale_keep_masks"]


def scale_keep_masks(keep_BHW: torch.Tensor, patch_nums: Sequence[int], threshold: float = 0.5) -> list[torch.Tensor]:
    """Keep mask (B, H, W) in [0, 1] (1 = keep the given image) -> per scale a bool (B, pn*pn): force there."""
    if not 0.0 < threshold <= 1.0:
        raise UsageError(f"threshold must be in (0, 1], got {threshold}")
    keep = keep_BHW.float().unsqueeze(1)
    out = []
    for pn in patch_nums:
        share = F.interpolate(keep, size=(pn, pn), mode="area").flatten(1)  # B, pn*pn
        out.append(share >= threshold - 1e-6)
    return out


class TokenForcing:
    """Logits processor: at scale k, rows where `masks[k]` holds get all their mass on `tokens[k]`.

    tokens[k]: (B, l) long; masks[k]: (B, l) bool. Whatever the sampler then does (top-k, top-p,
    temperature, argmax), a forced position yields its given token.
    """

    def __init__(self, tokens: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> None:
        if len(tokens) != len(masks) or any(t.shape != m.shape for t, m in zip(tokens, masks, strict=False)):
            raise ValueError("tokens and masks must be per-scale tensors of equal shapes")
        self.tokens, self.masks = list(tokens), list(masks)

    def __call__(self, logits_BlV: torch.Tensor, step: int) -> torch.Tensor:
        mask = self.masks[step].to(logits_BlV.device)
        if not bool(mask.any()):
            return logits_BlV
        tokens = self.tokens[step].to(logits_BlV.device)
        if mask.shape != logits_BlV.shape[:2]:
            raise UsageError(
                f"token forcing was built for {tuple(mask.shape)} tokens at scale {step}, "
                f"but the sampler makes {tuple(logits_BlV.shape[:2])}",
                fix="build it for the same batch size (one image and mask per sample)",
            )
        return force_tokens(logits_BlV, tokens, mask)


@torch.no_grad()
def inpaint_forcing(
    vae: VQVAE, image_B3HW: torch.Tensor, keep_BHW: torch.Tensor, threshold: float = 0.5
) -> TokenForcing:
    """Token forcing that keeps `image` (B, 3, H, W) in [-1, 1] where `keep` (B, H, W) is 1.

    Pass it to the sampler (`processors=[...]`) with the class to generate in the rest. keep = 1
    everywhere reproduces the image's tokens; keep = 0 everywhere is plain class-conditional sampling.
    """
    if keep_BHW.shape != (image_B3HW.shape[0], *image_B3HW.shape[-2:]):
        raise InputError(
            f"mask of shape {tuple(keep_BHW.shape)} does not match the image {tuple(image_B3HW.shape)}",
            fix="give one mask of the image's height and width per image",
        )
    tokens = vae.encode(image_B3HW)
    return TokenForcing(tokens, scale_keep_masks(keep_BHW, vae.patch_nums, threshold))


def _as_array(value: Any, what: str) -> torch.Tensor:
    """A path, PIL image, numpy array or tensor -> uint8/float tensor (H, W[, C])."""
    from pathlib import Path

    if isinstance(value, (str, Path)):
        from PIL import Image

        try:
            with Image.open(value) as im:
                value = im.convert("RGB" if what == "image" else "L")
        except OSError as e:
            raise InputError(f"cannot read the {what} {value}", why=str(e), fix="pass a PNG or JPEG file") from e
    from PIL import Image

    if isinstance(value, Image.Image):
        import numpy as np

        value = np.array(value.convert("RGB" if what == "image" else "L"))
    return torch.as_tensor(value)


def prepare_inpaint(
    image: Any, mask: Any, size: int, batch: int, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image (H, W, 3) uint8 and mask (H, W) (1, True or white = generate there) -> (B, 3, size, size) in
    [-1, 1] and keep (B, size, size) in [0, 1], resized to the model's size and repeated `batch` times."""
    x = _as_array(image, "image")
    m = _as_array(mask, "mask")
    if x.ndim != 3 or x.shape[-1] != 3:
        raise InputError(f"the image must be (H, W, 3) RGB, got shape {tuple(x.shape)}", fix="pass an RGB image")
    if m.ndim == 3:
        m = m.float().mean(-1)
    if m.ndim != 2 or tuple(m.shape) != tuple(x.shape[:2]):
        raise InputError(
            f"the mask {tuple(m.shape)} does not match the image {tuple(x.shape[:2])}",
            fix="give a mask of the image's height and width (white = generate there, black = keep)",
        )
    scale = 255.0 if x.dtype == torch.uint8 else 1.0
    image_13HW = x.permute(2, 0, 1)[None].float().div(scale).mul(2).sub(1)
    generate = m.float() / (255.0 if m.dtype == torch.uint8 else 1.0) >= 0.5
    image_13HW = F.interpolate(image_13HW, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)
    keep = F.interpolate((~generate).float()[None, None], size=(size, size), mode="area")[:, 0]
    return image_13HW.expand(batch, -1, -1, -1).to(device), keep.expand(batch, -1, -1).to(device)
