"""The model registry: embedded defaults (`genmotion/weights/<name>/`), installed checkpoints
(`$GENMOTION_HOME/models/<name>/`), and the pipeline class of each checkpoint `kind`.

Pipelines are found through the `genmotion.pipelines` entry point group (kind -> class with
`from_pretrained(directory, device=None, dtype=None)`), so the core never imports a generator.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from genmotion.checkpoint import CARD_NAME, WEIGHTS_NAME, is_checkpoint_dir, read_checkpoint_config
from genmotion.errors import GenmotionError, InputError, UsageError

__all__ = [
    "ModelEntry",
    "check_config_keys",
    "embedded_dir",
    "home_dir",
    "list_models",
    "load_pipeline",
    "pipeline_class",
    "resolve",
]

log = logging.getLogger(__name__)

# The top-level keys of each shipped kind's config.yaml, for pipelines that do not declare `config_keys`
# (a frozenset class attribute naming every top-level key their checkpoints may hold, `kind` included).
_TOP_LEVEL_KEYS = {
    "videoar": frozenset({"kind", "model", "data", "sampling"}),
    "ca2vdm": frozenset({"kind", "model", "data"}),
    "var": frozenset({"kind", "vae", "var", "classes", "sampling"}),
}
_warned: set[Path] = set()


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


def _scan() -> tuple[list[ModelEntry], dict[str, tuple[Path, str]]]:
    """(loadable entries, {name: (folder, why)} of checkpoint folders that cannot be read)."""
    out: list[ModelEntry] = []
    broken: dict[str, tuple[Path, str]] = {}
    for source, root in (("embedded", embedded_dir()), ("installed", home_dir())):
        try:
            folders = sorted(root.iterdir()) if root.is_dir() else []
        except OSError as e:
            log.warning("cannot list the models in %s: %s", root, e)
            continue
        for d in folders:
            try:
                if not is_checkpoint_dir(d):
                    continue
                kind = str(read_checkpoint_config(d)["kind"])
                size = (d / WEIGHTS_NAME).stat().st_size
                summary = _card_summary(d)
            except (GenmotionError, OSError, UnicodeDecodeError) as e:
                broken.setdefault(d.name, (d, str(e).splitlines()[0] if str(e) else type(e).__name__))
                continue
            out.append(ModelEntry(name=d.name, kind=kind, path=d, source=source, size_bytes=size, summary=summary))
    return out, broken


def list_models() -> list[ModelEntry]:
    """Every checkpoint the registry can load by name, embedded first. A checkpoint folder that cannot be
    read is skipped with a one-line warning naming it (once per process), so it breaks only itself."""
    entries, broken = _scan()
    for name, (d, why) in broken.items():
        if d not in _warned:
            _warned.add(d)
            log.warning("skipping the unreadable checkpoint %r (%s): %s", name, d, why)
    return entries


def resolve(name_or_path: str | Path) -> Path:
    """A registry name or a checkpoint directory -> the checkpoint directory."""
    p = Path(name_or_path)
    if is_checkpoint_dir(p):
        return p
    name = str(name_or_path)
    for root in (embedded_dir(), home_dir()):  # the folder of that name, read alone (no scan of the others)
        d = root / name
        if name and "/" not in name and name not in (".", "..") and is_checkpoint_dir(d):
            try:
                read_checkpoint_config(d)
            except (GenmotionError, OSError) as e:
                raise InputError(
                    f"the checkpoint {name!r} ({d}) cannot be read", why=str(e), fix="re-install it"
                ) from e
            return d
    entries, broken = _scan()
    for entry in entries:
        if entry.name == str(name_or_path):
            return entry.path
    if str(name_or_path) in broken:
        d, why = broken[str(name_or_path)]
        raise InputError(f"the checkpoint {str(name_or_path)!r} ({d}) cannot be read", why=why, fix="re-install it")
    names = [e.name for e in entries]
    raise UsageError(
        f"no model named {str(name_or_path)!r}",
        why="it is neither a registry name nor a checkpoint directory (config.yaml + model.safetensors)",
        fix=f"use one of {names} (see `genmotion models`) or a checkpoint directory" if names else "train one",
    )


def check_config_keys(directory: Path, config: dict[str, Any], cls: Any) -> None:
    """A checkpoint's config.yaml is as strict at the top level as below it: a key its pipeline does not
    read is an InputError (exit 3) naming it."""
    allowed = getattr(cls, "config_keys", None) or _TOP_LEVEL_KEYS.get(str(config["kind"]))
    if allowed is None:
        return
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise InputError(
            f"{directory / 'config.yaml'} has an unknown top-level key {unknown[0]!r}",
            why=f"a {config['kind']} checkpoint holds only {', '.join(sorted(allowed))}",
            fix="remove the key (or fix its spelling)",
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
    cls = pipeline_class(str(read_checkpoint_config(d)["kind"]))
    return cls.from_pretrained(d, device=device, dtype=dtype)  # checks the config keys and the weights file
