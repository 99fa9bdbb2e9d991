"""Official FlowAR checkpoints (OliverRen/FlowAR) -> `flowar-official`: the full-size inventory key for key on the
meta device, the loaded network's z and flow velocity equal to the official math written independently, the
sampler equal to the official one, `genmotion convert flowar` then `genmotion image --ckpt` through the CLI, and
files of the wrong kind."""

from __future__ import annotations

import pytest
import torch
from flowar_official_layout import FLOWAR_SIZES, flowar_inventory
from flowar_official_reference import (
    TINY_FLOWAR,
    official_kl_decode,
    official_sample,
    official_velocity,
    official_z,
    tiny_flowar_state_dict,
    tiny_kl_state_dict,
)
from image_core_official_layout import random_state_dict, vae_inventory
from PIL import Image

from genmotion.cli.app import main
from genmotion.errors import InputError, UsageError
from genmotion.image_core.flowar_config import FlowARSamplingConfig
from genmotion.image_core.official_flowar import (
    detect_official_flowar_config,
    load_official_flowar_checkpoint,
    load_official_flowar_model,
    official_flowar_buffers,
    official_times,
    stream_official_scales,
)
from genmotion.image_core.official_flowar_model import OfficialFlowAR


@pytest.mark.parametrize("size", ["S", "L", "H"])
def test_full_size_inventory_loads_key_for_key(size):
    spec = FLOWAR_SIZES[size]
    inventory = flowar_inventory(**spec)
    with torch.device("meta"):
        sd = {k: torch.empty(shape) for k, shape in inventory.items()}
    cfg = detect_official_flowar_config(sd)
    assert (cfg.width, cfg.depth, cfg.num_heads, cfg.head_width, cfg.head_depth, cfg.cross) == (
        spec["width"], spec["depth"], spec["heads"], spec["head_width"], spec["head_depth"], spec["cross"],
    )  # fmt: skip
    assert (cfg.patch_nums, cfg.latent_channels, cfg.num_classes) == ((1, 2, 4, 8, 16), 16, 1000)
    with torch.device("meta"):
        model = OfficialFlowAR(cfg)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == inventory
    assert set(official_flowar_buffers(cfg)) <= set(inventory)


@pytest.mark.parametrize("cross", [False, True])
def test_loaded_network_computes_the_official_z_and_velocity(cross):
    sd = tiny_flowar_state_dict(0, cross)
    model = load_official_flowar_model(dict(sd), tiny_kl_state_dict(1), norm_groups=4)
    net, g = model.net, torch.Generator().manual_seed(3)
    labels, inputs = torch.tensor([0, 2, 4]), torch.randn(3, net.config.num_tokens - 1, 4, generator=g)
    depth, heads = TINY_FLOWAR["depth"], TINY_FLOWAR["heads"]
    with torch.no_grad():
        z = net(labels, inputs)
        torch.testing.assert_close(z, official_z(sd, labels, inputs, depth=depth, heads=heads), rtol=1e-5, atol=1e-5)
        # One scale at a time against the KV cache (the official sampler's path): the same z.
        cond, cache = net.class_emb(labels), net.new_cache()
        steps = [net.forward_scale(0, None, cond, cache)]
        for si, (b, e) in enumerate(net.config.scale_slices[1:], start=1):
            steps.append(net.forward_scale(si, inputs[:, b - 1 : e - 1], cond, cache))
        torch.testing.assert_close(torch.cat(steps, 1), z, rtol=1e-5, atol=1e-5)
        x, t = torch.randn(3, 16, 4, generator=g), torch.tensor([0.9, 0.3137, 0.0])
        ours = net.flownet(x, t, z[:, 5:])
    reference = official_velocity(sd, x, t, z[:, 5:], depth=TINY_FLOWAR["head_depth"])
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    assert ours.abs().mean() > 0.1  # not a trivially zero head


def test_loaded_autoencoder_decodes_as_the_official_one():
    kl = tiny_kl_state_dict(1)
    model = load_official_flowar_model(tiny_flowar_state_dict(0, False), dict(kl), norm_groups=4)
    z = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ours = model.vae.decode(model.denormalise(z))
    reference = official_kl_decode(kl, z / 0.2325, groups=4, num_levels=2)  # FlowAR decodes tokens / 0.2325
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-4)
    assert ours.shape == (2, 3, 8, 8) and ours.abs().mean() > 0.05


@pytest.mark.parametrize("cfg", [1.0, 3.0])
def test_sampler_follows_the_official_one(cfg):
    sd = tiny_flowar_state_dict(2, cross=True)
    model = load_official_flowar_model(dict(sd), tiny_kl_state_dict(1), norm_groups=4)
    settings = FlowARSamplingConfig(guidance_scale=cfg, guidance_interval=0.7, num_steps=6)
    labels = torch.tensor([1, 3])
    steps = list(stream_official_scales(model, labels, generator=torch.Generator().manual_seed(5), settings=settings))
    g = torch.Generator().manual_seed(5)
    noises = [torch.randn(2, p * p, 4, generator=g) for p in TINY_FLOWAR["patch_nums"]]
    reference = official_sample(
        sd, labels, noises, cfg=cfg, guidance=0.7, num_steps=6, depth=2, heads=2, head_depth=2
    ).transpose(1, 2).reshape(2, 4, 4, 4)  # fmt: skip
    torch.testing.assert_close(steps[-1].latent, reference, rtol=1e-4, atol=1e-4)
    assert official_times(25).numel() == 25 and float(official_times(25)[12]) == pytest.approx(0.25)
    assert official_times(50).numel() == 51


def _files(tmp_path, cross=False):
    torch.save(tiny_flowar_state_dict(0, cross), tmp_path / "FlowAR-S.pth")
    torch.save({"model": tiny_kl_state_dict(1)}, tmp_path / "kl16.ckpt")
    return ["--flowar", str(tmp_path / "FlowAR-S.pth"), "--vae", str(tmp_path / "kl16.ckpt"), "--norm-groups", "4"]


def test_convert_flowar_through_the_cli_then_generate(tmp_path):
    out = tmp_path / "flowar-s"
    assert main(["convert", "flowar", *_files(tmp_path), "-o", str(out)]) == 0
    model = load_official_flowar_checkpoint(out)
    sd = torch.load(tmp_path / "FlowAR-S.pth", weights_only=True)
    labels, inputs = torch.tensor([4]), torch.randn(1, 20, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model.net(labels, inputs), official_z(sd, labels, inputs, depth=2, heads=2))
    assert float(model.latent_std[0]) == pytest.approx(1 / 0.2325)
    png = tmp_path / "f.png"
    common = ["image", "--ckpt", str(out), "--class", "3", "--num", "2", "-o", str(png)]
    assert main([*common, "--guidance", "2"]) == 0
    assert Image.open(png).size == (16, 8)  # two 8x8 images: a 4x4 latent of the tiny autoencoder
    assert main([*common[:-2], "--top-k", "5", "-o", str(tmp_path / "k.png")]) == 2  # no logits to filter


def test_bad_flowar_files_are_clear_errors(tmp_path):
    files = _files(tmp_path)
    var_sd = random_state_dict(vae_inventory(vocab=32, cvae=4, ch=8, ch_mult=(1, 2), num_res_blocks=1), 0)
    torch.save(var_sd, tmp_path / "vae_ch160.pth")
    wrong_vae = [*files[:2], "--vae", str(tmp_path / "vae_ch160.pth"), "--norm-groups", "4"]
    assert main(["convert", "flowar", *wrong_vae, "-o", str(tmp_path / "a")]) == 2  # VAR's VQ tokenizer as --vae
    swapped = ["--flowar", files[3], "--vae", files[1], "--norm-groups", "4"]
    assert main(["convert", "flowar", *swapped, "-o", str(tmp_path / "b")]) == 2
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    sd = tiny_flowar_state_dict(0, False)
    with pytest.raises(InputError, match="'flownet.extra' is unexpected"):
        load_official_flowar_model({**sd, "flownet.extra": torch.zeros(1)}, tiny_kl_state_dict(1), norm_groups=4)
    with pytest.raises(InputError, match="'mask' is not the buffer"):
        load_official_flowar_model({**sd, "mask": torch.zeros_like(sd["mask"])}, tiny_kl_state_dict(1), norm_groups=4)
    kl = {k: v for k, v in tiny_kl_state_dict(1).items() if not k.endswith("mid.attn_1.k.weight")}
    with pytest.raises(InputError, match="lacks one of q, k, v"):
        load_official_flowar_model(sd, kl, norm_groups=4)
    with pytest.raises(UsageError, match="an official VAR .*, not an official FlowAR"):
        load_official_flowar_model(
            {"word_embed.weight": torch.zeros(1), "head.weight": torch.zeros(1)}, kl, norm_groups=4
        )
