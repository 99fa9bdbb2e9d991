"""`genmotion bench image --parts`: only the named parts run, earlier parts in the JSON are kept, the table is
rebuilt from every part present, and an unknown part is a usage error (exit 2) before any work."""

from __future__ import annotations

import json

from image_core_tiny import TINY, seeded

from genmotion.cli.app import main
from genmotion.image_core.convert import save_image_model
from genmotion.image_core.model import VARImageModel

NAMES = ("red circle", "red square", "blue circle", "blue square", "green circle")


def test_parts_merge_into_one_json(tmp_path):
    ckpt = tmp_path / "tiny-var"
    save_image_model(seeded(VARImageModel, TINY), ckpt, class_names=NAMES)
    out = tmp_path / "image.json"
    common = ["bench", "image", "--quick", "--threads", "1", "--ckpt", str(ckpt), "--json", str(out)]
    assert main([*common, "--parts", "parity"]) == 0
    first = json.loads(out.read_text())
    assert first["parity"]["tokens_identical"] and "var_toy" not in first and first["table"] == []
    assert main([*common, "--parts", "var_toy", "--plot", str(tmp_path / "image.png")]) == 0
    both = json.loads(out.read_text())
    assert both["parity"] == first["parity"]  # kept, not re-run
    (row,) = both["table"]
    assert row["model"] == str(ckpt) and row["samples"] == 2 * len(NAMES) and 0.0 <= row["class_accuracy"] <= 1.0
    assert row["tokens_per_image"] == sum(p * p for p in TINY.var.patch_nums)
    assert (tmp_path / "image.png").stat().st_size > 0


def test_unknown_part_is_a_usage_error(tmp_path):
    out = tmp_path / "image.json"
    assert main(["bench", "image", "--quick", "--json", str(out), "--parts", "parity,nope"]) == 2
    assert not out.exists()
