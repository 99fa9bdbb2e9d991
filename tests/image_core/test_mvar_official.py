"""Official MVAR checkpoints (CVL-UESTC/MVAR) load through the VAR converter: their keys and shapes are VAR's, the
stored training mask `attn_bias_for_masking` is block-diagonal by scale (detected: `markov`), and `--mvar` adds the
7x7 window from scale 8 that the weights do not record. Proven on official-layout state dicts."""

from __future__ import annotations

import pytest
import torch
from image_core_official_layout import official_var_logits, random_state_dict, var_inventory
from image_core_tiny import PATCH_NUMS, TINY, TINY_VAR, seeded

from genmotion.cli.app import main
from genmotion.errors import UsageError
from genmotion.image_core.convert import load_official_var
from genmotion.image_core.model import VARImageModel
from genmotion.image_core.pipeline import VARPipeline
from genmotion.nn.vqvae_config import PATCH_NUMS_256


def mvar_mask(patch_nums: tuple[int, ...]) -> torch.Tensor:
    """(1, 1, L, L) the mask MVAR's code builds: token 0 sees itself; every later scale's rows see the columns from
    the end of the previous scale to the end of their own."""
    ends = torch.cumsum(torch.tensor([p * p for p in patch_nums]), 0).tolist()
    mask = torch.full((ends[-1], ends[-1]), -torch.inf)
    mask[0, 0] = 0
    for begin, end in zip(ends[:-1], ends[1:], strict=True):
        mask[begin:end, begin:end] = 0
    return mask.reshape(1, 1, ends[-1], ends[-1])


def _mvar_sd(patch_nums: tuple[int, ...], seed: int = 0) -> dict:
    inventory = var_inventory(depth=2, patch_nums=patch_nums, width=16, num_classes=5, vocab=32, cvae=4)
    sd = random_state_dict(inventory, seed=seed, patch_nums=patch_nums)
    sd["attn_bias_for_masking"] = mvar_mask(patch_nums)
    return sd


def test_mvar_file_is_detected_and_computes_the_official_forward():
    sd = _mvar_sd(PATCH_NUMS)
    var = load_official_var(dict(sd))
    assert var.config.markov and not var.config.neighbourhood_kernel
    assert not load_official_var(random_state_dict(
        var_inventory(depth=2, patch_nums=PATCH_NUMS, width=16, num_classes=5, vocab=32, cvae=4), 0, PATCH_NUMS
    )).config.markov  # fmt: skip
    g = torch.Generator().manual_seed(4)
    labels, x = torch.tensor([0, 3, 5]), torch.randn(3, TINY_VAR.num_tokens - 1, 4, generator=g)
    with torch.no_grad():
        ours = var(labels, x)
    torch.testing.assert_close(ours, official_var_logits(sd, labels, x, depth=2), rtol=1e-5, atol=1e-5)


def test_neighbourhood_is_added_and_refused_for_var_files():
    var = load_official_var(_mvar_sd(PATCH_NUMS), neighbourhood=(3, 2))
    assert (var.config.neighbourhood_kernel, var.config.neighbourhood_from) == (3, 2)
    plain = random_state_dict(
        var_inventory(depth=2, patch_nums=PATCH_NUMS, width=16, num_classes=5, vocab=32, cvae=4), 0, PATCH_NUMS
    )
    with pytest.raises(UsageError, match="MVAR"):
        load_official_var(plain, neighbourhood=(3, 2))


def test_convert_var_mvar_through_the_cli(tmp_path):
    torch.save(_mvar_sd(PATCH_NUMS_256), tmp_path / "mvar_d2.pth")
    torch.save({"trainer": {"vae_local": seeded(VARImageModel, TINY).vae.state_dict()}}, tmp_path / "vae.pth")
    files = ["--var", str(tmp_path / "mvar_d2.pth"), "--vae", str(tmp_path / "vae.pth"), "--norm-groups", "4"]
    out = tmp_path / "mvar"
    assert main(["convert", "var", *files, "--mvar", "-o", str(out)]) == 0
    pipe = VARPipeline.from_pretrained(out)
    cfg = pipe.config.var
    assert cfg.markov and (cfg.neighbourhood_kernel, cfg.neighbourhood_from) == (7, 8)
    assert pipe.generate(2, seed=0).images.shape == (1, 32, 32, 3)
    # the tiny schedule has 4 scales: a window from scale 8 does not fit, a clear usage error
    torch.save(_mvar_sd(PATCH_NUMS), tmp_path / "small.pth")
    small = ["--var", str(tmp_path / "small.pth"), "--vae", str(tmp_path / "vae.pth"), "--norm-groups", "4"]
    assert main(["convert", "var", *small, "--mvar", "-o", str(tmp_path / "small")]) == 2
    assert not (tmp_path / "small").exists()
