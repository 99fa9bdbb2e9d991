"""Zero-shot in/out-painting and class editing: the kept region's tokens survive sampling at every scale."""

from __future__ import annotations

import pytest
import torch
from image_core_tiny import PATCH_NUMS, TINY_VAE, TINY_VAR, seeded

from genmotion.errors import InputError
from genmotion.image_core.editing import TokenForcing, inpaint_forcing, prepare_inpaint, scale_keep_masks
from genmotion.image_core.sampler import stream_scales
from genmotion.image_core.var_model import VAR
from genmotion.nn.vqvae import VQVAE


def _image(seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("cfg", [1.0, 2.5])
def test_inpainting_keeps_the_known_tokens_at_every_scale(cfg):
    var, vae = seeded(VAR, TINY_VAR), seeded(VQVAE, TINY_VAE)
    image = _image()
    keep = torch.zeros(2, 8, 8)
    keep[:, :, :4] = 1.0  # keep the left half, generate the right half
    keep[1] = 1.0 - keep[1]  # the second image: out-painting of its right half's complement
    forcing = inpaint_forcing(vae, image, keep)
    known = vae.encode(image)
    steps = list(
        stream_scales(var, vae.quantize, torch.tensor([1, 4]), generator=torch.Generator().manual_seed(3),
                      guidance_scale=cfg, top_k=4, processors=[forcing])
    )  # fmt: skip
    masks = scale_keep_masks(keep, PATCH_NUMS)
    assert int(masks[-1].sum()) == 2 * 8 and not bool(masks[-1].all())  # half of each 4x4 map is forced
    for step, mask, tokens in zip(steps, masks, known, strict=True):
        assert torch.equal(step.indices[mask], tokens[mask])
    free = ~masks[-1]
    assert not torch.equal(steps[-1].indices[free], known[-1][free])  # the rest is generated


def test_token_forcing_overrides_any_sampler_setting():
    logits = torch.randn(1, 3, 10)
    forcing = TokenForcing([torch.tensor([[7, 2, 5]])], [torch.tensor([[True, False, True]])])
    out = forcing(logits, 0)
    assert out[0, 0].argmax() == 7 and out[0, 2].argmax() == 5 and torch.equal(out[0, 1], logits[0, 1])
    assert torch.isinf(out[0, 0]).sum() == 9


def test_prepare_inpaint_resizes_and_checks_shapes():
    image = torch.randint(0, 256, (16, 16, 3), dtype=torch.uint8)
    mask = torch.zeros(16, 16, dtype=torch.uint8)
    mask[:, 8:] = 255  # white = generate
    x, keep = prepare_inpaint(image, mask, 8, 3)
    assert x.shape == (3, 3, 8, 8) and keep.shape == (3, 8, 8)
    assert float(keep[0, :, :4].min()) == 1.0 and float(keep[0, :, 4:].max()) == 0.0
    with pytest.raises(InputError, match="does not match"):
        prepare_inpaint(image, mask[:8], 8, 1)
