"""The training-task protocol and its registry.

A task says how to build a model from its config, feed it data and score it; the generic Lightning
loop in `genmotion.train.run` does the rest. Generator packages register tasks through the
`genmotion.tasks` entry point group (name -> Task class), so the core never imports them.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Protocol

from genmotion.errors import UsageError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["Task", "get_task", "task_names"]


class Task(Protocol):
    """What a model family provides to `genmotion train`."""

    #: dataclasses for the `model:` and `data:` sections, parsed strictly
    model_config: type
    data_config: type

    def build_model(self, model_cfg: Any) -> nn.Module: ...

    def dataloader(self, data_cfg: Any, batch_size: int, seed: int, rank: int, world_size: int) -> Any:
        """An iterable of batches for this process (each rank gets its own stream)."""
        ...

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar loss and named numbers to log."""
        ...

    def checkpoint_config(self, model_cfg: Any, data_cfg: Any) -> dict[str, Any]:
        """The `config.yaml` of the exported checkpoint (must hold `kind`)."""
        ...

    def evaluate(self, model: nn.Module, model_cfg: Any, data_cfg: Any) -> dict[str, float]:
        """Numbers for the model card, computed after training."""
        ...


def task_names() -> list[str]:
    return sorted(ep.name for ep in entry_points(group="genmotion.tasks"))


def get_task(name: str) -> Task:
    eps = {ep.name: ep for ep in entry_points(group="genmotion.tasks")}
    if name not in eps:
        raise UsageError(f"unknown training task {name!r}", fix=f"set task: to one of {sorted(eps)}")
    return eps[name].load()()
