"""The LBW watermark tokenizer pair: its load path (shipped file, none, a foreign one), plain sampling untouched
by it bit for bit, watermarked samples decoded with it, detection reading with it, and one step of its training
(the cycle loss) going down on the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from image_core_tiny import TINY, seeded
from safetensors.torch import save_file

from genmotion.errors import InputError
from genmotion.image_core.convert import save_image_model
from genmotion.image_core.model import VARImageModel
from genmotion.image_core.pipeline import VARPipeline
from genmotion.image_core.watermark import Watermark, code_groups, detect_watermark
from genmotion.image_core.watermark_train import WatermarkTrainModel, attack_batch, cycle_loss
from genmotion.image_core.watermark_vae import (
    WATERMARK_VAE_NAME,
    WatermarkPair,
    load_watermark_pair,
    save_watermark_pair,
    scale_logits,
)
from genmotion.pipeline import to_uint8

KEY = "5eb63bbbe01eeed0"


def _perturbed_pair(model: VARImageModel) -> WatermarkPair:
    pair = WatermarkPair.from_vae(model.vae)
    with torch.no_grad():
        for p in pair.decoder.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return pair


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """(plain checkpoint, the same with a watermark pair, the pair)."""
    model = seeded(VARImageModel, TINY)
    plain, marked = tmp_path_factory.mktemp("plain") / "tiny", tmp_path_factory.mktemp("marked") / "tiny"
    save_image_model(model, plain)
    save_image_model(model, marked)
    pair = _perturbed_pair(model)
    save_watermark_pair(pair, marked)
    return plain, marked, pair


def test_the_pair_loads_from_the_checkpoint_and_shares_the_quantizer(ckpts):
    plain, marked, pair = ckpts
    pipe = VARPipeline.from_pretrained(marked)
    vae = pipe.watermark_tokenizer()
    assert vae is not None and vae.quantize is pipe.model.vae.quantize
    w = pair.decoder.conv_in.weight.to(torch.bfloat16).float()
    assert torch.equal(vae.decoder.conv_in.weight, w)
    assert not torch.equal(vae.decoder.conv_in.weight, pipe.model.vae.decoder.conv_in.weight)
    assert VARPipeline.from_pretrained(plain).watermark_tokenizer() is None
    assert load_watermark_pair(plain, TINY.vae) is None


def test_a_pair_of_another_tokenizer_is_refused(tmp_path):
    save_file({"encoder.conv_in.weight": torch.zeros(2, 2)}, str(tmp_path / WATERMARK_VAE_NAME))
    with pytest.raises(InputError, match="does not fit"):
        load_watermark_pair(tmp_path, TINY.vae)


def test_plain_sampling_ignores_the_pair_and_watermarked_samples_are_decoded_with_it(ckpts):
    plain, marked, _ = ckpts
    with_pair, without = VARPipeline.from_pretrained(marked), VARPipeline.from_pretrained(plain)
    a = with_pair.generate([0, 1, 2], num_images=3, seed=3)
    b = without.generate([0, 1, 2], num_images=3, seed=3)
    assert np.array_equal(a.images, b.images)
    assert all(torch.equal(x, y) for x, y in zip(a.tokens, b.tokens, strict=True))
    wm = Watermark(KEY, mode="hard")
    ma = with_pair.generate([0, 1, 2], num_images=3, seed=3, watermark=wm)
    mb = without.generate([0, 1, 2], num_images=3, seed=3, watermark=wm)
    assert all(torch.equal(x, y) for x, y in zip(ma.tokens, mb.tokens, strict=True))  # same tokens, other decoder
    f_hat = with_pair.model.vae.indices_to_fhat(list(ma.tokens))
    assert np.array_equal(ma.images, to_uint8(with_pair.watermark_tokenizer().fhat_to_image(f_hat)))
    assert np.array_equal(mb.images, to_uint8(without.model.vae.fhat_to_image(f_hat)))
    assert not np.array_equal(ma.images, mb.images)


def test_detection_reads_with_the_pair_or_says_it_used_the_model(ckpts):
    plain, marked, _ = ckpts
    image = VARPipeline.from_pretrained(plain).generate(0, seed=0).images[0]
    assert detect_watermark(VARPipeline.from_pretrained(marked), image, KEY).tokenizer == "watermark"
    assert detect_watermark(VARPipeline.from_pretrained(plain), image, KEY).tokenizer == "model"


def test_scale_logits_pick_what_the_quantizer_picks():
    vae = seeded(VARImageModel, TINY).vae
    f = torch.randn(3, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    indices = vae.quantize.f_to_indices(f)
    picks = [lg.argmax(-1) for lg in scale_logits(vae.quantize, f, indices, temperature=0.01)]
    assert all(torch.equal(p, i) for p, i in zip(picks, indices, strict=True))


def test_attacks_keep_shape_and_range_and_pass_gradients():
    x = torch.rand(6, 3, 8, 8, requires_grad=True)
    out = attack_batch(x * 2 - 1, torch.Generator().manual_seed(0), 0.1)
    assert out.shape == (6, 3, 8, 8) and float(out.detach().abs().max()) <= 1.0
    out.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_the_cycle_loss_goes_down_on_the_tiny_model():
    reference = seeded(VARImageModel, TINY).vae.requires_grad_(False)
    pair = WatermarkPair.from_vae(reference).train()
    g = torch.Generator().manual_seed(0)
    indices = [torch.randint(TINY.vae.vocab_size, (8, p * p), generator=g) for p in TINY.vae.patch_nums]
    groups = code_groups(reference.quantize.embedding.weight, 4)
    cfg = WatermarkTrainModel(groups=4)
    optimiser = torch.optim.Adam(pair.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss, logs = cycle_loss(pair, reference, indices, groups, (2, 3), cfg, torch.Generator().manual_seed(1))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0] and 0.0 <= logs["group_read"] <= 1.0
