"""The Lightning side of `genmotion train`: a LightningModule around any task, and the checkpoint
callback that writes safetensors. Imported only when training starts (Lightning is slow to import)."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from genmotion.train.config import TrainerConfig
from genmotion.train.task import Task

__all__ = ["SafetensorsModelCheckpoint", "TaskModule"]


class SafetensorsModelCheckpoint(ModelCheckpoint):
    FILE_EXTENSION = ".safetensors"


class TaskModule(L.LightningModule):
    """Adapts a `Task` to Lightning: the model is `self.model`, the loss is the task's."""

    def __init__(self, task: Task, model: torch.nn.Module, cfg: TrainerConfig) -> None:
        super().__init__()
        self.task, self.model, self.cfg = task, model, cfg

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss, logs = self.task.loss(self.model, batch)
        self.log("loss", loss, prog_bar=True, on_step=True, sync_dist=False)
        for k, v in logs.items():
            self.log(k, float(v), on_step=True)
        return loss

    def configure_optimizers(self) -> Any:
        decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim < 2]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.cfg.lr,
            betas=(0.9, 0.95),
        )
        warm, total = self.cfg.warmup_steps, self.cfg.max_steps

        def schedule(step: int) -> float:  # linear warm-up, cosine decay to 10 %
            if step < warm:
                return (step + 1) / warm
            frac = min(1.0, (step - warm) / max(1, total - warm))
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
