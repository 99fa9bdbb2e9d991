"""The model registry: embedded defaults (`genmotion/weights/<name>/`), installed checkpoints
(`$GENMOTION_HOME/models/<name>/`), and the pipeline class of each checkpoint `kind`.

Pipelines are found through the `genmotion.pipelines` entry point group (kind -> class with
`from_pretrained(directory, device=None, dtype=None)`), so the core never imports a generator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from genmotion.checkpoint import CARD_NAME, WEIGHTS_NAME, is_checkpoint_dir, read_checkpoint_config
from genmotion.errors import UsageError

__all__ = ["ModelEntry", "embedded_dir", "home_dir", "list_models", "load_pipeline", "pipeline_class", "resolve"]


@dataclass(frozen=True, kw_only=True)
class ModelEntry:
    name: str
    kind: str
    path: Path
    source: str  # "embedded" or "installed"
    size_bytes: int
    summary: str


def embedded_dir() -> Path:
    return Path(__file__).resolve().parent / "weights"


def home_dir() -> Path:
    """Where user-installed checkpoints live: $GENMOTION_HOME/models (default ~/.cache/genmotion)."""
    root = os.environ.get("GENMOTION_HOME") or str(Path.home() / ".cache" / "genmotion")
    return Path(root) / "models"


def _card_summary(d: Path) -> str:
    card = d / CARD_NAME
    if not card.is_file():
        return ""
    for line in card.read_text().splitlines():
        s = line.strip()
        if s and not s.startswith("#"):
            return s[:100]
    return ""


def list_models() -> list[ModelEntry]:
    """Every checkpoint the registry can load by name, embedded first."""
    out = []
    for source, root in (("embedded", embedded_dir()), ("installed", home_dir())):
        if not root.is_dir():
            continue
        for d in sorted(root.iterdir()):
            if not is_checkpoint_dir(d):
                continue
            kind = str(read_checkpoint_config(d)["kind"])
            size = (d / WEIGHTS_NAME).stat().st_size
            summary = _card_summary(d)
            out.append(ModelEntry(name=d.name, kind=kind, path=d, source=source, size_bytes=size, summary=summary))
    return out


def resolve(name_or_path: str | Path) -> Path:
    """A registry name or a checkpoint directory -> the checkpoint directory."""
    p = Path(name_or_path)
    if is_checkpoint_dir(p):
        return p
    for entry in list_models():
        if entry.name == str(name_or_path):
            return entry.path
    names = [e.name for e in list_models()]
    raise UsageError(
        f"no model named {str(name_or_path)!r}",
        why="it is neither a registry name nor a checkpoint directory (config.yaml + model.safetensors)",
        fix=f"use one of {names} (see `genmotion models`) or a checkpoint directory" if names else "train one",
    )


def pipeline_class(kind: str) -> Any:
    """The pipeline class registered for checkpoint `kind`."""
    eps = {ep.name: ep for ep in entry_points(group="genmotion.pipelines")}
    if kind not in eps:
        raise UsageError(f"no pipeline for checkpoint kind {kind!r}", fix=f"known kinds: {sorted(eps)}")
    return eps[kind].load()


def load_pipeline(name_or_path: str | Path, device: Any = None, dtype: Any = None) -> Any:
    """Registry name or directory -> the pipeline of its kind, loaded."""
    d = resolve(name_or_path)
    kind = str(read_checkpoint_config(d)["kind"])
    return pipeline_class(kind).from_pretrained(d, device=device, dtype=dtype)
