"""Official M-VAR checkpoints (OliverRensu/MVAR, the Mamba one) -> `m-var`: the full-size key/shape inventory on the
meta device, every key consumed, the loaded model's forward (teacher-forced and scale by scale) equal to the
official math written independently, `genmotion convert m-var` through the CLI, and files of the wrong kind."""

from __future__ import annotations

import pytest
import torch
from image_core_official_layout import official_buffers, random_state_dict, vae_inventory, var_inventory
from image_core_tiny import PATCH_NUMS, TINY_VAR, seeded
from image_core_tiny import TINY as TINY_VAR_IMAGE
from mvar_official_layout import mvar_buffers, mvar_inventory, official_mvar_logits, random_mvar_state_dict
from PIL import Image

from genmotion.cli.app import main
from genmotion.errors import InputError, UsageError
from genmotion.image_core.convert import load_official_var
from genmotion.image_core.mamba_var import MambaVAR
from genmotion.image_core.mamba_var_io import load_mvar_model
from genmotion.image_core.model import VARImageModel
from genmotion.image_core.official_m_var import detect_mvar_config, load_official_mvar, map_official_mvar
from genmotion.nn.vqvae_config import PATCH_NUMS_256

TINY_SIZES = dict(width=16, num_classes=5, vocab=32, cvae=4, d_state=4, headdim=8)


def _tiny(seed: int = 0, attn_l2_norm: bool = True) -> dict:
    inventory = mvar_inventory(depth=2, patch_nums=PATCH_NUMS, attn_l2_norm=attn_l2_norm, **TINY_SIZES)
    return random_mvar_state_dict(inventory, seed, PATCH_NUMS, depth=2)


@pytest.mark.parametrize("depth", [16, 20, 24, 30, 32])
def test_full_size_official_inventory_maps_key_for_key(depth):
    l2 = depth >= 24  # the official README: attn_l2_norm off for d16 and d20
    inventory = mvar_inventory(depth=depth, patch_nums=PATCH_NUMS_256, attn_l2_norm=l2)
    with torch.device("meta"):
        sd = {k: torch.empty(shape) for k, shape in inventory.items()}
    sd.update(mvar_buffers(PATCH_NUMS_256, depth))  # the buffers are compared by value: real tensors
    sd.update({k: torch.zeros(shape) for k, shape in inventory.items() if k.endswith("zero_k_bias")})
    cfg = detect_mvar_config(sd)
    assert (cfg.depth, cfg.width, cfg.num_heads, cfg.attn_l2_norm, cfg.patch_nums) == (
        depth, 64 * depth, depth, l2, PATCH_NUMS_256,
    )  # fmt: skip
    assert (cfg.d_state, cfg.d_conv, cfg.expand, cfg.ssm_head_dim, cfg.markov) == (64, 4, 2, 64, False)
    mapped = map_official_mvar(sd, cfg)  # raises on any key left over, missing or of another shape
    with torch.device("meta"):
        model = MambaVAR(cfg)
    assert {k: tuple(v.shape) for k, v in mapped.items()} == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    consumed = set(mapped) | {"lvl_1L", "attn_bias_for_masking"} | {f"blocks.{i}.attn.patch_nums" for i in range(depth)}
    assert len(consumed) == len(inventory)


@pytest.mark.parametrize("attn_l2_norm", [True, False])
def test_loaded_model_computes_the_official_forward(attn_l2_norm):
    sd = _tiny(attn_l2_norm=attn_l2_norm)
    model = load_official_mvar(dict(sd))
    g = torch.Generator().manual_seed(4)
    labels, x = torch.tensor([0, 3, 5]), torch.randn(3, TINY_VAR.num_tokens - 1, 4, generator=g)
    reference = official_mvar_logits(sd, labels, x, depth=2, attn_l2_norm=attn_l2_norm)
    with torch.no_grad():
        torch.testing.assert_close(model(labels, x), reference, rtol=1e-5, atol=1e-5)
        # Sampling runs one scale at a time, carrying the scan state (the official code re-runs Mamba over the
        # cached scales instead): the same numbers.
        conditions, cache = model.class_conditions(labels), model.new_cache(3)
        steps = [model.forward_scale(model.start_tokens(conditions.cond_BD), conditions, cache)]
        for si, (begin, end) in enumerate(model.config.scale_slices[1:], start=1):
            steps.append(model.forward_scale(model.scale_tokens(si, x[:, begin - 1 : end - 1]), conditions, cache))
    torch.testing.assert_close(torch.cat(steps, dim=1), reference, rtol=1e-5, atol=1e-5)
    # The scan is part of what is compared: other Mamba weights give other logits.
    sd["blocks.1.mamba.A_log"] = sd["blocks.1.mamba.A_log"] + 1.0
    assert not torch.allclose(official_mvar_logits(sd, labels, x, depth=2, attn_l2_norm=attn_l2_norm), reference)


def test_bad_official_files_are_clear_errors():
    sd = _tiny()
    with pytest.raises(InputError, match=r"'blocks\.0\.mamba\.extra' is unexpected|'blocks\.0\.mixer\.extra'"):
        load_official_mvar({**sd, "blocks.0.mamba.extra": torch.zeros(3)})
    broken = dict(sd, **{"blocks.1.attn.patch_nums": torch.tensor([1, 4, 9, 25]).int()})
    with pytest.raises(InputError, match=r"'blocks\.1\.attn\.patch_nums'.*wrong schedule"):
        load_official_mvar(broken)
    causal = dict(sd, attn_bias_for_masking=official_buffers(PATCH_NUMS)["attn_bias_for_masking"])
    with pytest.raises(InputError, match="attn_bias_for_masking"):
        load_official_mvar(causal)  # VAR's block-causal mask in an M-VAR file: not M-VAR's
    grouped = dict(sd, **{"blocks.0.mamba.in_proj.weight": torch.zeros(2 * 32 + 16 + 4, 16)})
    with pytest.raises(InputError, match="Mamba2 mixer.*ngroups 1"):
        load_official_mvar(grouped)


def test_files_of_the_wrong_kind_say_what_they_are():
    var_sd = random_state_dict(
        var_inventory(depth=2, patch_nums=PATCH_NUMS, width=16, num_classes=5, vocab=32, cvae=4), 0, PATCH_NUMS
    )
    vae_sd = random_state_dict(vae_inventory(vocab=32, cvae=4, ch=8, ch_mult=(1, 2), num_res_blocks=1), 1)
    with pytest.raises(
        UsageError, match=r"an official VAR \(or MVAR\) transformer, not an official M-VAR.*convert var --var"
    ):
        load_official_mvar(var_sd)
    with pytest.raises(UsageError, match=r"the VAR tokenizer .*, not an official M-VAR.*--vae"):
        load_official_mvar(vae_sd)
    with pytest.raises(
        UsageError, match=r"an official M-VAR transformer \(Mamba mixers\), not an official VAR.*convert m-var --var"
    ):
        load_official_var(_tiny())
    with pytest.raises(UsageError, match="an official FlowAR model, not an official M-VAR"):
        load_official_mvar({"encoder_blocks.0.attn.qkv.weight": torch.zeros(3, 1), "z_proj.weight": torch.zeros(1)})


def _write_files(tmp_path):
    torch.save(random_mvar_state_dict(
        mvar_inventory(depth=2, patch_nums=PATCH_NUMS_256, **TINY_SIZES), 0, PATCH_NUMS_256, depth=2
    ), tmp_path / "d2.pth")  # fmt: skip
    torch.save({"trainer": {"vae_local": seeded(VARImageModel, TINY_VAR_IMAGE).vae.state_dict()}}, tmp_path / "vae.pth")
    return ["--var", str(tmp_path / "d2.pth"), "--vae", str(tmp_path / "vae.pth"), "--norm-groups", "4"]


def test_convert_m_var_through_the_cli_then_generate(tmp_path):
    files, out = _write_files(tmp_path), tmp_path / "m-var-d2"
    assert main(["convert", "m-var", *files, "-o", str(out)]) == 0
    model = load_mvar_model(out)
    official = torch.load(tmp_path / "d2.pth", weights_only=True)
    g = torch.Generator().manual_seed(2)
    labels, x = torch.tensor([1, 5]), torch.randn(2, model.config.var.num_tokens - 1, 4, generator=g)
    with torch.no_grad():
        ours = model.var(labels, x)
    reference = official_mvar_logits(official, labels, x, depth=2, attn_l2_norm=True)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    png = tmp_path / "m.png"
    assert main(["image", "--ckpt", str(out), "--class", "3", "--num", "2", "-o", str(png)]) == 0
    assert Image.open(png).size == (64, 32)  # the tiny tokenizer's 32 px images at the 256 px schedule, two


def test_convert_m_var_training_checkpoint_and_bad_input_through_the_cli(tmp_path):
    files = _write_files(tmp_path)
    trainer = {
        "mvar_wo_ddp": torch.load(tmp_path / "d2.pth", weights_only=True),
        "vae_local": torch.load(tmp_path / "vae.pth", weights_only=True)["trainer"]["vae_local"],
    }
    torch.save({"trainer": trainer, "args": {}}, tmp_path / "ar-ckpt-last.pth")
    ckpt = ["--var", str(tmp_path / "ar-ckpt-last.pth"), "--norm-groups", "4"]
    assert main(["convert", "m-var", *ckpt, "-o", str(tmp_path / "from-trainer")]) == 0
    assert load_mvar_model(tmp_path / "from-trainer").config.var.depth == 2
    swapped = ["--var", files[3], "--vae", files[1], "--norm-groups", "4"]
    assert main(["convert", "m-var", *swapped, "-o", str(tmp_path / "swapped")]) == 2  # tokenizer as --var
    assert main(["convert", "var", *files, "-o", str(tmp_path / "as-var")]) == 2  # an M-VAR file for convert var
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pth")
    assert main(["convert", "m-var", "--var", str(tmp_path / "other.pth"), "-o", str(tmp_path / "other")]) == 2
    assert main(["convert", "m-var", "--var", str(tmp_path / "none.pth"), "-o", str(tmp_path / "none")]) == 3
    assert not any((tmp_path / name).exists() for name in ("swapped", "as-var", "other", "none"))
