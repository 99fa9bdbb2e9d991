"""Model cards written next to every exported checkpoint: how it was trained and how it scores."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import yaml

from genmotion.checkpoint import CARD_NAME
from genmotion.config import to_dict

__all__ = ["write_card"]


def write_card(
    directory: Path, *, run: Any, command: str, steps: int, seconds: float, metrics: dict[str, float], world_size: int
) -> Path:
    """Write `card.md` into the checkpoint `directory` (atomically) and return its path."""
    import torch

    lines = [
        f"# {run.task} checkpoint",
        "",
        f"Trained by genmotion's own training code on its procedural data; task `{run.task}`.",
        "",
        "## Training",
        f"* command: `{command}`",
        f"* steps: {steps} (batch {run.trainer.batch_size} per process, {world_size} process(es))",
        f"* wall time: {seconds:.1f} s on {platform.machine()} with {torch.get_num_threads()} threads per process",
        f"* precision: {run.trainer.precision}; weights stored as bf16 safetensors",
        "",
        "## Evaluation",
        *[f"* {k}: {v:.4g}" for k, v in sorted(metrics.items())],
        "",
        "## Full config",
        "```yaml",
        yaml.safe_dump(to_dict(run), sort_keys=False).rstrip(),
        "```",
        "",
    ]
    path = directory / CARD_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)
    return path
