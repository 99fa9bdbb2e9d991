"""Official FlexVAR checkpoints (jiaosiyu1999/FlexVAR: FlexVARd*.pth + FlexVAE.pth) through `genmotion convert
flexvar`: the full-size key/shape inventories on the meta device, every key consumed, the transformer's forward and
the tokenizer's decoding and encoding equal to the official math, the CLI path and files of the wrong kind."""

from __future__ import annotations

import pytest
import torch
from image_core_official_layout import random_state_dict
from official_flex_hmar_layout import (
    flexvae_inventory,
    flexvar_inventory,
    hmar_inventory,
    official_flexvae_decode,
    official_flexvae_indices,
    official_flexvar_logits,
)

from genmotion.cli.app import main
from genmotion.errors import InputError, UsageError
from genmotion.image_core.convert import load_official_var, load_official_vqvae
from genmotion.image_core.flex_model import FlexVAR
from genmotion.image_core.flex_pipeline import FlexVARPipeline
from genmotion.image_core.flex_tokenizer import FlexVQVAE
from genmotion.image_core.official_flexvae import detect_flexvae_config, flexvae_to_vqvae_keys, load_official_flexvae
from genmotion.image_core.official_flexvar import (
    FLEXVAR_SAMPLING,
    detect_flexvar_config,
    flexvar_to_project_keys,
    load_official_flexvar,
)

TINY_FLEXVAR = dict(depth=2, width=16, num_classes=5, vocab=32, cvae=4, pos_side=8, mask_tokens=30)
TINY_FLEXVAE = dict(vocab=32, cvae=4, ch=8, ch_mult=(1, 2), num_res_blocks=1, z_channels=8)


def _shapes(sd: dict) -> dict:
    return {k: tuple(v.shape) for k, v in sd.items()}


def _meta(inventory: dict) -> dict:
    return {k: torch.empty(s, device="meta") for k, s in inventory.items()}


@pytest.mark.parametrize("depth", [16, 20, 24])
def test_full_size_transformers_match_the_official_inventory(depth):
    sd = _meta(flexvar_inventory(depth=depth))
    cfg = detect_flexvar_config(sd)
    assert (cfg.depth, cfg.width, cfg.vocab_size, cfg.position_size, cfg.latent_size) == (depth, 64 * depth, 8912,
                                                                                          32, 16)  # fmt: skip
    with torch.device("meta"):
        ours = _shapes(FlexVAR(cfg).state_dict())
    mapped = _shapes(flexvar_to_project_keys(sd))
    assert mapped == ours and set(sd) - {"attn_bias_for_masking", "pos_1LC"} == set(ours) - {"pos_map"}


def test_full_size_tokenizer_matches_the_official_inventory():
    sd = _meta(flexvae_inventory())
    cfg = detect_flexvae_config(sd)
    assert (cfg.vocab_size, cfg.channels, cfg.bottleneck, cfg.quant_conv_kernel, cfg.image_size) == (
        8912, 128, 256, 1, 256)  # fmt: skip
    with torch.device("meta"):
        ours = _shapes(FlexVQVAE(cfg).state_dict())
    assert _shapes(flexvae_to_vqvae_keys(sd)) == {k: s for k, s in ours.items() if k != "quantize.ema_vocab_hit_SV"}


def _tiny(seed: int = 0) -> tuple[dict, dict]:
    var_sd = random_state_dict(flexvar_inventory(**TINY_FLEXVAR), seed)
    var_sd["attn_bias_for_masking"] = torch.zeros(1, 1, 30, 30)  # whatever schedule ran last: dropped
    vae_sd = random_state_dict(flexvae_inventory(**TINY_FLEXVAE), seed + 1)
    vae_sd["quantize.codebook_used"] = torch.randint(0, 32, (65536,)).float()
    return var_sd, vae_sd


def test_transformer_keys_are_consumed_and_the_official_forward_is_computed():
    var_sd, _ = _tiny(seed=2)
    var = load_official_flexvar(dict(var_sd))
    state = var.state_dict()
    assert torch.equal(state["pos_map"], var_sd["pos_1LC"])
    assert all(torch.equal(state[k], v) for k, v in var_sd.items() if k not in ("pos_1LC", "attn_bias_for_masking"))
    assert len(state) == len(var_sd) - 1  # pos_1LC -> pos_map; the stale mask is the one key dropped
    g = torch.Generator().manual_seed(5)
    labels = torch.tensor([0, 4, 5])
    inputs = [torch.randn(3, 4, s, s, generator=g) for s in (2, 3, 5)]  # schedule 1, 2, 3, 5
    with torch.no_grad():
        ours = var(labels, inputs)
    torch.testing.assert_close(ours, official_flexvar_logits(var_sd, labels, inputs, depth=2), rtol=1e-5, atol=1e-5)


def test_tokenizer_keys_are_consumed_and_decode_and_encode_match_the_official():
    _, vae_sd = _tiny(seed=4)
    vae = load_official_flexvae({"model": vae_sd}, norm_groups=4)  # FlexVAE.pth nests the weights under 'model'
    state = vae.state_dict()
    mapped = flexvae_to_vqvae_keys(vae_sd)
    assert set(state) == set(mapped) | {"quantize.ema_vocab_hit_SV"}
    assert all(torch.equal(state[k], v) for k, v in mapped.items())
    qkv = state["decoder.mid.attn_1.qkv.weight"]
    assert torch.equal(qkv, torch.cat([vae_sd[f"decoder.mid.1.{t}.weight"] for t in "qkv"]))
    g = torch.Generator().manual_seed(6)
    idx = torch.randint(0, 32, (2, 16 * 16), generator=g)
    with torch.no_grad():
        image = vae.indices_to_image(idx, 16)
    want = official_flexvae_decode(vae_sd, idx, 16, groups=4).clamp(-1, 1)
    torch.testing.assert_close(image, want, rtol=1e-4, atol=1e-5)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    sides = [1, 2, 5, 16]
    got = vae.scale_indices(x, sides)
    for a, b in zip(got, official_flexvae_indices(vae_sd, x, sides, groups=4), strict=True):
        assert torch.equal(a, b)


def test_convert_flexvar_through_the_cli_then_sample(tmp_path):
    var_sd, vae_sd = _tiny(seed=1)
    torch.save(var_sd, tmp_path / "FlexVARd2.pth")
    torch.save({"model": vae_sd}, tmp_path / "FlexVAE.pth")
    files = ["--var", str(tmp_path / "FlexVARd2.pth"), "--vae", str(tmp_path / "FlexVAE.pth"), "--norm-groups", "4"]
    out = tmp_path / "flexvar"
    assert main(["convert", "flexvar", *files, "-o", str(out)]) == 0
    assert (out / "config.yaml").read_text().startswith("kind: flexvar")
    pipe = FlexVARPipeline.from_pretrained(out)
    assert pipe.sampling == FLEXVAR_SAMPLING and pipe.model.config.vae.bottleneck == 8
    image = tmp_path / "x.png"
    assert main(["image", "--ckpt", str(out), "--class", "2", "--steps", "4", "-o", str(image)]) == 0
    assert image.stat().st_size > 0


def test_files_of_another_kind_are_usage_errors(tmp_path):
    var_sd, vae_sd = _tiny()
    paths = {name: tmp_path / f"{name}.pth" for name in ("flexvar", "flexvae", "hmar")}
    torch.save(var_sd, paths["flexvar"])
    torch.save({"model": vae_sd}, paths["flexvae"])
    torch.save(random_state_dict(hmar_inventory(depth=4, n_layers_train=2, width=32, num_classes=5, vocab=32, cvae=4,
                                                patch_nums=(1, 2)), 0), paths["hmar"])  # fmt: skip
    cases = [("flexvar", "hmar", "flexvae"), ("flexvar", "flexvae", "flexvar"), ("var", "flexvar", "flexvae")]
    for i, (command, var, vae) in enumerate(cases):
        args = ["convert", command, "--var", str(paths[var]), "--vae", str(paths[vae]), "--norm-groups", "4"]
        assert main([*args, "-o", str(tmp_path / f"o{i}")]) == 2, (command, var, vae)
    with pytest.raises(UsageError, match="FlexVAR's tokenizer.*not the VAR tokenizer"):
        load_official_vqvae(vae_sd, norm_groups=4)
    with pytest.raises(UsageError, match="official FlexVAR transformer.*genmotion convert flexvar"):
        load_official_var(var_sd)
    with pytest.raises(UsageError, match="no official VAR-family layout"):
        load_official_flexvae({"model": {"x.weight": torch.zeros(2)}})
    bad = dict(var_sd, pos_1LC=torch.zeros(1, 16, 8, 6))
    with pytest.raises(InputError, match="square"):
        load_official_flexvar(bad)
    wrong_vocab = dict(vae_sd, **{"quantize.embedding.weight": torch.zeros(64, 4)})
    with pytest.raises(InputError, match="do not belong together"):
        from genmotion.image_core.official_flexvar import load_official_flexvar_model

        load_official_flexvar_model(var_sd, {"model": wrong_vocab}, norm_groups=4)


def test_a_training_checkpoint_gives_both_parts(tmp_path):
    var_sd, vae_sd = _tiny(seed=7)
    trainer = {"var_wo_ddp": {f"_orig_mod.{k}": v for k, v in var_sd.items()}, "vae_local": vae_sd}
    torch.save({"trainer": trainer, "args": {"depth": 2}}, tmp_path / "ar-ckpt-last.pth")
    var = load_official_flexvar(tmp_path / "ar-ckpt-last.pth")
    vae = load_official_flexvae(tmp_path / "ar-ckpt-last.pth", norm_groups=4)
    assert torch.equal(var.state_dict()["pos_map"], var_sd["pos_1LC"])
    assert torch.equal(vae.state_dict()["quantize.embedding.weight"], vae_sd["quantize.embedding.weight"])
