"""Multi-scale residual VQ tokenizer: phi schedule, teacher forcing vs inference accumulation, round trips."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from image_core_tiny import PATCH_NUMS, TINY_VAE, seeded

from genmotion.errors import InputError
from genmotion.nn.quantizer import MultiScaleQuantizer
from genmotion.nn.vqvae import VQVAE
from genmotion.nn.vqvae_config import PATCH_NUMS_256


def _random_indices(patch_nums, batch, vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (batch, p * p), generator=g) for p in patch_nums]


def test_phi_index_mapping_for_ten_scales():
    q = MultiScaleQuantizer(dataclasses.replace(TINY_VAE, patch_nums=PATCH_NUMS_256))
    assert [q.phi_index(si) for si in range(10)] == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]
    x = torch.randn(1, 4, 16, 16)
    for si, k in enumerate([0, 0, 1, 1, 1, 2, 2, 3, 3, 3]):
        assert torch.equal(q.phi(si, x), q.quant_resi.qresi_ls[k](x))


def test_phi_is_half_identity_half_conv():
    q = seeded(MultiScaleQuantizer, TINY_VAE)
    phi, x = q.quant_resi.qresi_ls[0], torch.randn(2, 4, 4, 4)
    torch.testing.assert_close(phi(x), 0.5 * x + 0.5 * F.conv2d(x, phi.weight, phi.bias, padding=1))


def test_teacher_forcing_input_matches_the_accumulation_and_the_sampler_path():
    q = seeded(MultiScaleQuantizer, TINY_VAE)
    B, C, H = 2, TINY_VAE.latent_channels, PATCH_NUMS[-1]
    idx = _random_indices(PATCH_NUMS, B, TINY_VAE.vocab_size)
    x_BLC = q.idxBl_to_var_input(idx)
    assert x_BLC.shape == (B, sum(p * p for p in PATCH_NUMS) - 1, C)
    f_hat, f_hat_inf, begin = torch.zeros(B, C, H, H), torch.zeros(B, C, H, H), 0
    with torch.no_grad():
        for si, pn in enumerate(PATCH_NUMS[:-1]):
            code = q.embedding(idx[si]).transpose(1, 2).reshape(B, C, pn, pn)
            f_hat = f_hat + q.phi(si, F.interpolate(code, size=(H, H), mode="bicubic"))
            nxt = PATCH_NUMS[si + 1]
            want = F.interpolate(f_hat, size=(nxt, nxt), mode="area").flatten(2).transpose(1, 2)
            torch.testing.assert_close(x_BLC[:, begin : begin + nxt * nxt], want)
            f_hat_inf, next_map = q.next_autoregressive_input(si, f_hat_inf, code)
            torch.testing.assert_close(next_map.flatten(2).transpose(1, 2), want)
            begin += nxt * nxt


def test_encode_decode_round_trip_is_consistent():
    vae = seeded(VQVAE, TINY_VAE)
    image = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    indices = vae.encode(image)
    assert [tuple(i.shape) for i in indices] == [(2, p * p) for p in PATCH_NUMS]
    assert all(int(i.min()) >= 0 and int(i.max()) < TINY_VAE.vocab_size for i in indices)
    with torch.no_grad():
        f_hats = vae.quantize.f_to_fhats(vae.image_to_latent(image))
        torch.testing.assert_close(vae.indices_to_fhat(indices), f_hats[-1])
        decoded = vae.decode_indices(indices)
        torch.testing.assert_close(decoded, vae.reconstruct(image))
    assert decoded.shape == image.shape and decoded.abs().max() <= 1
    assert all(torch.equal(a, b) for a, b in zip(indices, vae.encode(image), strict=True))  # deterministic


def test_single_scale_codes_come_back_exactly():
    cfg = dataclasses.replace(TINY_VAE, patch_nums=(4,), quant_resi=0.0)
    q = seeded(MultiScaleQuantizer, cfg)
    idx = _random_indices((4,), 2, cfg.vocab_size)
    with torch.no_grad():
        f = q.indices_to_fhat(idx)
    assert torch.equal(q.f_to_indices(f)[0], idx[0])


def test_training_forward_passes_gradients_to_the_encoder():
    vae = seeded(VQVAE, TINY_VAE).train()
    rec, vq_loss = vae(torch.rand(1, 3, 8, 8) * 2 - 1)
    (rec.square().mean() + vq_loss).backward()
    assert vae.encoder.conv_in.weight.grad is not None and vae.quantize.embedding.weight.grad is not None


def test_wrong_image_size_names_the_needed_size():
    vae = seeded(VQVAE, TINY_VAE)
    with pytest.raises(InputError, match="8, 8"):
        vae.encode(torch.zeros(1, 3, 16, 16))


def test_tokenizer_attention_matches_the_official_math():
    from genmotion.nn.vqvae_nets import AttnBlock

    block = seeded(lambda: AttnBlock(8, groups=4))
    x = torch.randn(2, 8, 3, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        q, k, v = block.qkv(block.norm(x)).reshape(2, 3, 8, 9).unbind(1)
        w = torch.bmm(q.permute(0, 2, 1), k).mul(8**-0.5).softmax(dim=2)  # B, HW (queries), HW (keys)
        want = x + block.proj_out(torch.bmm(v, w.permute(0, 2, 1)).view(2, 8, 3, 3))
        torch.testing.assert_close(block(x), want)
