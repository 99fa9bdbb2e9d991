"""Every recipe under configs/ parses strictly into its task's configs (a renamed field breaks this test, not a
user's training run hours later)."""

from pathlib import Path

import pytest

from genmotion.train.run import _parse

RECIPES = sorted((Path(__file__).resolve().parents[2] / "configs").rglob("*.yaml"))


def test_there_are_recipes():
    assert len(RECIPES) >= 20


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_parses(path: Path):
    run, task, model_cfg, data_cfg = _parse(path, [])
    assert run.task and model_cfg is not None and data_cfg is not None
