from dataclasses import dataclass, field
from typing import Literal

import pytest

from genmotion.config import apply_overrides, from_dict, load_config, replace, save_config, to_dict
from genmotion.errors import UsageError


@dataclass(frozen=True, kw_only=True)
class Inner:
    width: int = 16
    scales: tuple[int, ...] = (1, 2, 4)
    act: Literal["gelu", "silu"] = "gelu"


@dataclass(frozen=True, kw_only=True)
class Outer:
    name: str
    lr: float = 1e-3
    inner: Inner = field(default_factory=Inner)
    resume: str | None = None


def test_round_trip_through_yaml(tmp_path):
    cfg = Outer(name="a", inner=Inner(width=32, scales=(1, 3)))
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(Outer, tmp_path / "c.yaml") == cfg


def test_unknown_key_names_the_dotted_key():
    with pytest.raises(UsageError, match=r"'inner\.widht'.*valid keys here: act, scales, width"):
        from_dict(Outer, {"name": "a", "inner": {"widht": 3}})


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"name": 3}, "name"),
        ({"name": "a", "lr": "fast"}, "lr"),
        ({"name": "a", "inner": {"width": 2.5}}, "inner.width"),
        ({"name": "a", "inner": {"width": True}}, "inner.width"),
        ({"name": "a", "inner": {"scales": [1, "x"]}}, r"inner.scales\[1\]"),
        ({"name": "a", "inner": {"act": "relu"}}, "inner.act"),
        ({"name": "a", "inner": 5}, "inner"),
    ],
)
def test_wrong_types_name_the_key(data, key):
    with pytest.raises(UsageError, match=key):
        from_dict(Outer, data)


def test_missing_required_key():
    with pytest.raises(UsageError, match="'name' is required"):
        from_dict(Outer, {})


def test_overrides_parse_values_and_create_sections():
    data = apply_overrides({"name": "a"}, ["inner.width=64", "lr=0.5", "inner.scales=[1,2]", "resume=null"])
    cfg = from_dict(Outer, data)
    assert cfg.inner.width == 64 and cfg.lr == 0.5 and cfg.inner.scales == (1, 2) and cfg.resume is None
    assert replace(cfg, ["inner.act=silu"]).inner.act == "silu"


def test_bad_override_syntax():
    with pytest.raises(UsageError, match="no '='"):
        apply_overrides({}, ["trainer.devices"])
    with pytest.raises(UsageError, match="is a value, not a section"):
        apply_overrides({"lr": 1}, ["lr.x=2"])


def test_to_dict_is_plain():
    assert to_dict(Outer(name="a")) == {
        "name": "a",
        "lr": 1e-3,
        "inner": {"width": 16, "scales": [1, 2, 4], "act": "gelu"},
        "resume": None,
    }


def test_exponent_without_dot_reads_as_float():
    """YAML 1.1 reads `1e-3` as a string; a float field takes it, a word still fails."""
    assert from_dict(Outer, apply_overrides({"name": "a"}, ["lr=1e-3"])).lr == pytest.approx(1e-3)
    assert from_dict(Outer, {"name": "a", "lr": "2E-4"}).lr == pytest.approx(2e-4)
    with pytest.raises(UsageError, match="'lr' must be a number"):
        from_dict(Outer, {"name": "a", "lr": "1e-3x"})
