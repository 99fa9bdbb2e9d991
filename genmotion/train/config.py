"""Training run configuration: the `trainer:` section shared by every task, and the run file layout.

A training YAML has four sections: `task` (which model family), `model` and `data` (the task's own
dataclasses, parsed strictly by the task) and `trainer` (this file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["RunConfig", "TrainerConfig"]


@dataclass(frozen=True, kw_only=True)
class TrainerConfig:
    max_steps: int = 100
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 0
    grad_clip: float = 1.0
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: Literal["auto", "ddp", "fsdp", "ddp_spawn"] = "auto"
    precision: Literal["32", "bf16-mixed", "16-mixed"] = "32"
    num_workers: int = 0
    threads: int = 0  # torch intra-op threads per process; 0 = leave as is
    log_every: int = 10
    ckpt_every: int = 0  # steps between training checkpoints; 0 = only at the end
    resume: str | None = None  # "last" or a path to a training checkpoint
    init_from: str | None = None  # an exported checkpoint directory whose weights start a fresh run (fine-tuning)
    seed: int = 0
    out_dir: str = "runs/default"
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "devices", "num_nodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"trainer.{name} must be ≥ 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"trainer.lr must be > 0, got {self.lr}")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """The whole training file; `model` and `data` stay plain mappings until the task parses them."""

    task: str
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
