"""Official VAR checkpoints: key/shape inventory of the full-size models, strict loads of official-layout
state dicts, save -> load round trip, and the errors that name the mismatching key."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from image_core_official_layout import (
    official_buffers,
    official_var_logits,
    random_state_dict,
    vae_inventory,
    var_inventory,
)
from image_core_tiny import PATCH_NUMS, TINY_VAR

from genmotion.errors import InputError
from genmotion.image_core.config import official_var_config, official_vqvae_config
from genmotion.image_core.convert import (
    convert_official,
    detect_var_config,
    load_image_model,
    load_official,
    load_official_var,
)
from genmotion.image_core.var_model import VAR
from genmotion.nn.vqvae import VQVAE
from genmotion.nn.vqvae_config import PATCH_NUMS_256, PATCH_NUMS_512


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("depth", [16, 20, 24, 30, 36])
def test_full_size_transformers_match_the_official_inventory(depth):
    cfg = official_var_config(depth)
    with torch.device("meta"):
        model = VAR(cfg)
    shared, schedule = depth == 36, PATCH_NUMS_512 if depth == 36 else PATCH_NUMS_256
    assert cfg.patch_nums == schedule and cfg.shared_aln == shared and cfg.width == 64 * depth
    assert _shapes(model) == var_inventory(depth=depth, patch_nums=schedule, shared_aln=shared)
    # Detection recovers the config from the keys alone (the level map carries the schedule).
    sd = {**model.state_dict(), **official_buffers(schedule)}
    assert detect_var_config(sd) == cfg


def test_full_size_tokenizer_matches_the_official_inventory():
    with torch.device("meta"):
        vae = VQVAE(official_vqvae_config())
    assert _shapes(vae) == vae_inventory()
    assert sum(p.numel() for p in vae.parameters()) == 108_948_355


TINY_VAE_INV = dict(vocab=32, cvae=4, ch=8, ch_mult=(1, 2), num_res_blocks=1, num_scales=len(PATCH_NUMS))


def _tiny_official(seed=0, **variant):
    var_sd = random_state_dict(
        var_inventory(depth=2, width=16, num_classes=5, vocab=32, cvae=4, patch_nums=PATCH_NUMS, **variant),
        seed,
        PATCH_NUMS,
    )
    return var_sd, random_state_dict(vae_inventory(**TINY_VAE_INV), seed + 1)


def _logits_and_image(model):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, TINY_VAR.num_tokens - 1, 4, generator=g)
    idx = [torch.randint(0, 32, (2, p * p), generator=g) for p in PATCH_NUMS]
    with torch.no_grad():
        return model.var(torch.tensor([0, 5]), x), model.vae.decode_indices(idx)


@pytest.mark.parametrize("variant", [{}, {"shared_aln": True}, {"attn_l2_norm": False}])
def test_official_layout_loads_strictly_and_survives_save_load(tmp_path, variant):
    var_sd, vae_sd = _tiny_official(**variant)
    model = load_official(var_sd, vae_sd, norm_groups=4)
    assert model.config.var == dataclasses.replace(TINY_VAR, drop_path_rate=0.1 * 2 / 24, **variant)
    for part, sd in (("var", var_sd), ("vae", vae_sd)):
        own = getattr(model, part).state_dict()
        assert own.keys() == sd.keys() and all(torch.equal(own[k], sd[k]) for k in sd)
    logits, image = _logits_and_image(model)
    loaded = load_image_model(convert_official(var_sd, vae_sd, tmp_path / "ckpt", norm_groups=4))
    logits2, image2 = _logits_and_image(loaded)
    assert torch.equal(logits, logits2) and torch.equal(image, image2)
    assert (tmp_path / "ckpt" / "config.yaml").read_text().startswith("kind: var")


@pytest.mark.parametrize("variant", [{}, {"shared_aln": True}, {"attn_l2_norm": False}])
def test_loaded_transformer_computes_the_official_forward(variant):
    var_sd, _ = _tiny_official(seed=5, **variant)
    var = load_official_var(var_sd)
    g = torch.Generator().manual_seed(4)
    labels, x = torch.tensor([0, 3, 5]), torch.randn(3, TINY_VAR.num_tokens - 1, 4, generator=g)
    with torch.no_grad():
        ours = var(labels, x)
    want = official_var_logits(var_sd, labels, x, depth=2, **variant)
    torch.testing.assert_close(ours, want, rtol=1e-5, atol=1e-5)


def test_training_checkpoints_are_unwrapped_from_a_weights_only_file(tmp_path):
    var_sd, vae_sd = _tiny_official()
    trainer = {
        "var_wo_ddp": {f"module._orig_mod.{k}": v for k, v in var_sd.items()},
        "vae_local": {f"_orig_mod.{k}": v for k, v in vae_sd.items()},
        "config": {"patch_nums": list(PATCH_NUMS)},
    }
    torch.save({"epoch": 3, "trainer": trainer}, tmp_path / "ar-ckpt-last.pth")
    model = load_official(tmp_path / "ar-ckpt-last.pth", norm_groups=4)  # tokenizer from the same file
    plain = load_official(var_sd, vae_sd, norm_groups=4)
    a, b = _logits_and_image(model), _logits_and_image(plain)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_wrong_depth_names_the_key_and_the_depth():
    var_sd = random_state_dict(
        var_inventory(depth=3, width=24, num_classes=5, vocab=32, cvae=4, patch_nums=PATCH_NUMS), 0, PATCH_NUMS
    )
    with pytest.raises(InputError, match=r"'blocks\.2\..*wrong depth.*3 blocks \(VAR-d3\).*depth 2"):
        load_official_var(var_sd, config=TINY_VAR)


def test_wrong_schedule_and_corrupt_buffers_are_named():
    var_sd, _ = _tiny_official()
    with pytest.raises(InputError, match=r"'pos_1LC'.*wrong schedule"):
        load_official_var(var_sd, config=dataclasses.replace(TINY_VAR, patch_nums=(1, 2, 4)))
    bad = dict(var_sd, attn_bias_for_masking=torch.zeros_like(var_sd["attn_bias_for_masking"]))
    with pytest.raises(InputError, match=r"'attn_bias_for_masking'.*block-causal mask.*wrong schedule"):
        load_official_var(bad)
    shuffled = dict(var_sd, lvl_1L=var_sd["lvl_1L"].flip(-1))
    with pytest.raises(InputError, match="'lvl_1L'"):
        load_official_var(shuffled)


def test_derived_buffers_may_be_absent():
    var_sd, _ = _tiny_official()
    stripped = {k: v for k, v in var_sd.items() if k not in ("lvl_1L", "attn_bias_for_masking")}
    stripped = {k: v for k, v in stripped.items() if not k.endswith("zero_k_bias")}
    with pytest.raises(InputError, match="cannot tell the scale schedule"):
        load_official_var(stripped)  # a tiny schedule is not a known one, and no level map says which
    var = load_official_var(stripped, config=TINY_VAR)
    assert torch.equal(var.attn_bias_for_masking, official_buffers(PATCH_NUMS)["attn_bias_for_masking"])


def test_not_a_var_file_or_missing_part_is_a_clear_error():
    var_sd, vae_sd = _tiny_official()
    with pytest.raises(InputError, match="not a VAR transformer"):
        load_official_var(vae_sd)
    with pytest.raises(InputError, match="no vae weights"):
        load_official({"trainer": {"var_wo_ddp": var_sd}}, norm_groups=4)
