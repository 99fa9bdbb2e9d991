"""The official FlowAR layout (wangqiang9/FlowAR): the inventory written from the official code matches the published
sizes; such files (and MAR's KL-16 autoencoder) are recognised by their keys, and `convert var` / `convert m-var`
refuse them by name pointing at `convert flowar` (exit 2); the KL-16 autoencoder fits `KLAutoencoder` key for key
once its q/k/v convolutions are fused."""

from __future__ import annotations

import math
import re

import pytest
import torch
from flowar_official_layout import FLOWAR_SIZES, flowar_inventory, kl16_inventory
from image_core_tiny import TINY, seeded

from genmotion.cli.app import main
from genmotion.image_core.flowar_config import KLAutoencoderConfig
from genmotion.image_core.kl_autoencoder import KLAutoencoder
from genmotion.image_core.model import VARImageModel
from genmotion.image_core.official_layouts import official_layout

PUBLISHED = {"L": 589e6, "H": 1.9e9}  # FlowAR-L and FlowAR-H parameters, as the README gives them


@pytest.mark.parametrize("size", ["S", "L", "H"])
def test_full_size_inventory_is_recognised_and_has_the_published_size(size):
    inventory = flowar_inventory(**FLOWAR_SIZES[size])
    with torch.device("meta"):
        sd = {k: torch.empty(shape) for k, shape in inventory.items()}
    assert official_layout(sd) == "flowar"
    params = sum(math.prod(s) for k, s in inventory.items() if k != "mask" and not k.endswith("rope.freqs"))
    if size in PUBLISHED:
        assert abs(params - PUBLISHED[size]) / PUBLISHED[size] < 0.01, params


def test_kl16_fits_the_kl_autoencoder_once_qkv_is_fused():
    inventory = kl16_inventory()
    assert official_layout(dict.fromkeys(inventory)) == "kl-autoencoder"  # type: ignore[arg-type]
    fused: dict[str, tuple[int, ...]] = {}
    for key, shape in inventory.items():
        m = re.match(r"(.*attn(?:_1|\.\d+)\.)[qkv]\.(weight|bias)$", key)
        if m is None:
            fused[key] = shape
        else:
            fused[f"{m.group(1)}qkv.{m.group(2)}"] = (3 * shape[0], *shape[1:])
    cfg = KLAutoencoderConfig(
        latent_channels=16, latent_size=16, channels=128, channel_mult=(1, 1, 2, 2, 4), num_res_blocks=2,
        norm_groups=32, using_sa=True, using_mid_sa=True,
    )  # fmt: skip
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in KLAutoencoder(cfg).state_dict().items()}
    assert ours == fused


def test_both_converters_refuse_a_flowar_file_by_name(tmp_path, capsys):
    tiny = flowar_inventory(width=16, depth=1, heads=2, head_depth=1, head_width=64, cross=True, patch_nums=(1, 2))
    g = torch.Generator().manual_seed(0)
    torch.save({k: torch.randn(s, generator=g) for k, s in tiny.items()}, tmp_path / "FlowAR-S.pth")
    torch.save(seeded(VARImageModel, TINY).vae.state_dict(), tmp_path / "vae.pth")
    files = ["--var", str(tmp_path / "FlowAR-S.pth"), "--vae", str(tmp_path / "vae.pth"), "--norm-groups", "4"]
    for command in ("var", "m-var"):
        assert main(["convert", command, *files, "-o", str(tmp_path / command)]) == 2
        err = capsys.readouterr().err
        assert "is an official FlowAR model" in err and "genmotion convert flowar --flowar" in err
        assert not (tmp_path / command).exists()
