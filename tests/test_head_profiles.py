"""One head-profile format: the versioned envelope both profile kinds are written in, read back by kind."""

import json

import pytest

from genmotion.cache.profile import HeadProfile, load_head_profile, read_profile_json, save_head_profile
from genmotion.errors import InputError
from genmotion.image_core.profile import load_head_profile as load_var_profile
from genmotion.registry import resolve


def _flow_profile() -> HeadProfile:
    return HeadProfile(recent_mass=((0.9, 0.1),), static=((True, False),), model="tiny")


def test_both_kinds_share_the_envelope_and_are_told_apart(tmp_path):
    path = save_head_profile(_flow_profile(), tmp_path / "flow.json")
    data = json.loads(path.read_text())
    assert (data["format"], data["version"], data["kind"]) == ("genmotion.head-profile", 2, "frame-recency")
    assert load_head_profile(path) == _flow_profile()
    with pytest.raises(InputError, match="next-scale"):
        read_profile_json(path, "next-scale")
    var = load_var_profile(resolve("var-toy") / "head_profile.json")
    assert (var["format"], var["version"], var["kind"]) == ("genmotion.head-profile", 2, "next-scale")
    with pytest.raises(InputError, match="frame-recency"):
        load_head_profile(resolve("var-toy") / "head_profile.json")


def test_version_one_files_still_load(tmp_path):
    old = {k: v for k, v in _flow_profile().to_dict().items() if k != "kind"} | {"version": 1}
    (tmp_path / "v1.json").write_text(json.dumps(old))
    assert load_head_profile(tmp_path / "v1.json") == _flow_profile()
    legacy_var = {"format": "genmotion-var-head-profile", "version": 1, "depth": 2, "num_heads": 2, "head_types": []}
    (tmp_path / "var_v1.json").write_text(json.dumps(legacy_var))
    assert load_var_profile(tmp_path / "var_v1.json")["num_layers"] == 2
