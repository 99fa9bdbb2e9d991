from pathlib import Path

import pytest

from genmotion.bench.targets import check_targets, targets_path
from genmotion.errors import InputError


def test_goals_come_from_the_targets_file(tmp_path, monkeypatch):
    path = tmp_path / "targets.yaml"
    path.write_text("demo:\n  speed: {min: 2.0, about: fast}\n  error: {max: 0.1}\n  exact: {is: true}\n")
    monkeypatch.setenv("GENMOTION_TARGETS", str(path))
    out = check_targets("demo", {"speed": 1.5, "error": 0.05, "exact": True, "other": 3}, {"speed": [1.5, 1.0]})
    assert out == {
        "speed": {"value": [1.5, 1.0], "target": "fast", "met": False},
        "error": {"value": 0.05, "target": "", "met": True},
        "exact": {"value": True, "target": "", "met": True},
    }
    assert check_targets("demo", {"speed": float("nan")})["speed"]["met"] is False
    path.write_text("demo: [unclosed\n")
    with pytest.raises(InputError, match="targets file"):
        check_targets("demo", {"speed": 1.0})


def test_the_repository_ships_its_targets(monkeypatch):
    monkeypatch.delenv("GENMOTION_TARGETS", raising=False)
    path = targets_path()
    assert path is not None and path == Path(__file__).resolve().parents[2] / "benchmarks" / "targets.yaml"
    assert check_targets("cache", {"forcing_kv_psnr": 30.0})["forcing_kv_psnr"]["met"] is True
