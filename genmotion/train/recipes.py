"""Training recipes shipped with the package (`configs/<generator>/<name>.yaml` in the source tree,
installed as `genmotion/recipes/`), so `genmotion train videoar-toy` works from any folder."""

from __future__ import annotations

from pathlib import Path

from genmotion.errors import InputError, UsageError

__all__ = ["list_recipes", "recipes_dir", "resolve_recipe"]


def recipes_dir() -> Path | None:
    """The folder of the packaged recipes: `genmotion/recipes` (a link to the source tree's configs/,
    copied into the wheel as package data)."""
    root = Path(__file__).resolve().parents[1] / "recipes"
    return root if root.is_dir() else None


def list_recipes() -> dict[str, Path]:
    """{name: path} of every packaged recipe; the name is the file stem with '_' written '-'."""
    root = recipes_dir()
    if root is None:
        return {}
    return {p.stem.replace("_", "-"): p for p in sorted(root.glob("*/*.yaml"))}


def resolve_recipe(name_or_path: str | Path) -> Path:
    """A recipe file path (as given, or `configs/<gen>/<file>.yaml` of the package from any folder) or a
    packaged recipe name (`videoar-toy`) -> the YAML file."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    root = recipes_dir()
    if root is not None:
        parts = p.parts[1:] if p.parts[:1] == ("configs",) else p.parts
        packaged = root.joinpath(*parts) if parts else None
        if packaged is not None and packaged.is_file():
            return packaged
    recipes = list_recipes()
    key = str(name_or_path).removesuffix(".yaml").replace("_", "-")
    if key in recipes:
        return recipes[key]
    if p.suffix in (".yaml", ".yml") or len(p.parts) > 1:
        raise InputError(f"recipe file {p} does not exist", fix="check the path, or pass a recipe name: " + _names())
    raise UsageError(f"no training recipe named {str(name_or_path)!r}", fix="use a YAML path or one of " + _names())


def _names() -> str:
    names = sorted(list_recipes())
    return ", ".join(names) if names else "(no recipes are installed)"
