"""Official HMAR checkpoints (NVlabs/HMAR) through `genmotion convert hmar`: the full-size key/shape inventory on
the meta device, every key consumed, the loaded model's next-scale and masked-refinement forwards equal to the
official math, the CLI path and the errors for files of the wrong kind."""

from __future__ import annotations

import pytest
import torch
from image_core_official_layout import official_buffers, random_state_dict, var_inventory
from image_core_tiny import PATCH_NUMS, TINY, seeded
from official_flex_hmar_layout import hmar_inventory, hmar_mask, official_hmar_logits

from genmotion.cli.app import main
from genmotion.errors import InputError, UsageError
from genmotion.image_core.convert import load_official_var
from genmotion.image_core.model import VARImageModel
from genmotion.image_core.official_hmar import detect_hmar_config, hmar_to_var_keys, load_official_hmar
from genmotion.image_core.pipeline import VARPipeline
from genmotion.image_core.var_model import VAR
from genmotion.nn.vqvae_config import PATCH_NUMS_256

TINY_HMAR = dict(depth=4, n_layers_train=2, width=32, num_classes=5, vocab=32, cvae=4)


def _with_buffers(sd: dict, patch_nums: tuple[int, ...]) -> dict:
    return {**sd, "lvl_1L": official_buffers(patch_nums)["lvl_1L"], "attn_bias_for_masking": hmar_mask(patch_nums)}


def _tiny_hmar(seed: int = 0, patch_nums: tuple[int, ...] = PATCH_NUMS) -> dict:
    return _with_buffers(random_state_dict(hmar_inventory(patch_nums=patch_nums, **TINY_HMAR), seed), patch_nums)


@pytest.mark.parametrize("depth", [16, 20, 24, 30])
def test_full_size_models_match_the_official_inventory(depth):
    inventory = hmar_inventory(depth=depth, patch_nums=PATCH_NUMS_256)
    sd = _with_buffers({k: torch.empty(s, device="meta") for k, s in inventory.items()}, PATCH_NUMS_256)
    cfg = detect_hmar_config(sd)
    assert (cfg.depth, cfg.mask_depth, cfg.markov, cfg.patch_nums, cfg.width) == (depth, 8, True, PATCH_NUMS_256,
                                                                                  64 * depth)  # fmt: skip
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in VAR(cfg).state_dict().items()}
    mapped = {k: tuple(v.shape) for k, v in hmar_to_var_keys(sd).items()}
    assert mapped == ours and len(mapped) == len(inventory)  # one key of ours per official key, no key left over


def test_every_key_is_consumed_and_the_official_forwards_are_computed():
    sd = _tiny_hmar(seed=3)
    var = load_official_hmar(dict(sd))
    assert var.config.markov and var.config.mask_depth == 2 and var.config.depth == 4
    state, mapped = var.state_dict(), hmar_to_var_keys(sd)
    assert state.keys() == mapped.keys() and all(torch.equal(state[k], mapped[k]) for k in state)
    g = torch.Generator().manual_seed(1)
    L = sum(p * p for p in PATCH_NUMS)
    labels, x = torch.tensor([0, 2, 5]), torch.randn(3, L - 1, 4, generator=g)
    own, hidden = torch.randn(3, L - 1, 4, generator=g), torch.tensor([0, 3, 4, 9, 20])
    masked = torch.zeros(3, L - 1, dtype=torch.bool)
    masked[:, hidden] = True
    with torch.no_grad():
        ours_ns, ours_mask = var(labels, x), var.forward_mask(labels, x, own, masked)
    spec = dict(depth=4, n_layers_train=2)
    torch.testing.assert_close(ours_ns, official_hmar_logits(sd, labels, x, **spec), rtol=1e-5, atol=1e-5)
    want = official_hmar_logits(sd, labels, x, own_BLCv=own, idx_to_mask=hidden, **spec)
    torch.testing.assert_close(ours_mask, want, rtol=1e-5, atol=1e-5)


def test_corrupt_or_mismatched_files_are_named():
    sd = _tiny_hmar()
    causal = dict(sd, attn_bias_for_masking=official_buffers(PATCH_NUMS)["attn_bias_for_masking"])
    with pytest.raises(InputError, match="not block-diagonal"):
        load_official_hmar(causal)
    lopsided = {k: v for k, v in sd.items() if not k.startswith("mask_blocks.1.")}
    with pytest.raises(InputError, match="2 next-scale and 1 refinement blocks"):
        load_official_hmar(lopsided)
    with pytest.raises(InputError, match="'mask_embed.weight' is missing"):
        load_official_hmar({k: v for k, v in sd.items() if k != "mask_embed.weight"})
    with pytest.raises(UsageError, match="official HMAR transformer.*genmotion convert hmar"):
        load_official_var(sd)  # the VAR converter names the file's kind and the command that reads it
    var_sd = random_state_dict(var_inventory(depth=2, patch_nums=PATCH_NUMS, width=16, num_classes=5, vocab=32,
                                             cvae=4), 0, PATCH_NUMS)  # fmt: skip
    with pytest.raises(UsageError, match="official VAR .*transformer, not an official HMAR"):
        load_official_hmar(var_sd)


def test_convert_hmar_through_the_cli_then_sample(tmp_path):
    torch.save(_tiny_hmar(seed=1), tmp_path / "hmar-d4.pth")
    torch.save(seeded(VARImageModel, TINY).vae.state_dict(), tmp_path / "vae.pth")
    files = ["--var", str(tmp_path / "hmar-d4.pth"), "--vae", str(tmp_path / "vae.pth"), "--norm-groups", "4"]
    out = tmp_path / "hmar"
    assert main(["convert", "hmar", *files, "-o", str(out)]) == 0
    pipe = VARPipeline.from_pretrained(out)
    assert pipe.config.var.markov and pipe.config.var.mask_depth == 2
    assert pipe.sampling.refine == (1, 2, 4, 1) and pipe.sampling.guidance_scale == 2.7
    assert main(["image", "--ckpt", str(out), "--class", "3", "-o", str(tmp_path / "x.png")]) == 0
    assert (tmp_path / "x.png").stat().st_size > 0


def test_convert_hmar_refuses_files_of_another_kind(tmp_path):
    hmar, vae = tmp_path / "hmar.pth", tmp_path / "vae.pth"
    torch.save(_tiny_hmar(), hmar)
    torch.save(seeded(VARImageModel, TINY).vae.state_dict(), vae)
    var_sd = random_state_dict(var_inventory(depth=2, patch_nums=PATCH_NUMS, width=16, num_classes=5, vocab=32,
                                             cvae=4), 0, PATCH_NUMS)  # fmt: skip
    torch.save(var_sd, tmp_path / "var.pth")
    groups = ["--norm-groups", "4"]
    cases = [
        ("hmar", tmp_path / "var.pth", vae),  # a VAR transformer
        ("hmar", vae, hmar),  # swapped
        ("var", hmar, vae),  # the VAR converter given an HMAR file
    ]
    for i, (command, var, tokenizer) in enumerate(cases):
        args = ["convert", command, "--var", str(var), "--vae", str(tokenizer), *groups, "-o", str(tmp_path / f"o{i}")]
        assert main(args) == 2, (command, var.name)
        assert not (tmp_path / f"o{i}").exists()
    assert main(["convert", "hmar", "--var", str(hmar), "-o", str(tmp_path / "o9")]) == 2  # --vae is required
    assert main(["convert", "hmar", "--var", str(tmp_path / "nope.pth"), "--vae", str(vae), "-o", "o"]) == 3
