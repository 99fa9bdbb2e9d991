"""`genmotion train`: one Lightning loop for every task.

Lightning owns devices, DDP/FSDP, multi-node, precision and resume; the task owns the model, data
and loss. Training checkpoints are safetensors (`SafetensorsCheckpointIO`); the final model is
exported as a checkpoint directory with a generated model card.
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genmotion.checkpoint import WEIGHTS_NAME, save_pretrained
from genmotion.config import apply_overrides, from_dict, load_yaml, save_config
from genmotion.errors import InputError, UsageError
from genmotion.train.card import write_card
from genmotion.train.config import RunConfig, TrainerConfig
from genmotion.train.task import Task, get_task

if TYPE_CHECKING:
    import lightning as L
    import torch

__all__ = ["TrainResult", "train"]

log = logging.getLogger(__name__)


class TrainResult:
    def __init__(self, checkpoint: Path | None, steps: int, seconds: float, metrics: dict[str, float]) -> None:
        self.checkpoint, self.steps, self.seconds, self.metrics = checkpoint, steps, seconds, metrics


def _resume_path(cfg: TrainerConfig, ckpt_dir: Path) -> str | None:
    if cfg.resume is None:
        return None
    p = ckpt_dir / "last.safetensors" if cfg.resume == "last" else Path(cfg.resume)
    if not p.is_file():
        raise UsageError(f"cannot resume: {p} does not exist", fix="train without trainer.resume, or fix the path")
    return str(p)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _check_precision(cfg: TrainerConfig) -> None:
    """fp16 mixed precision is refused on the CPU (Lightning would silently train in bf16 there)."""
    if cfg.precision != "16-mixed" or cfg.accelerator == "gpu":
        return
    if cfg.accelerator == "cpu" or not _cuda_available():
        raise UsageError(
            "trainer.precision=16-mixed is not supported on the CPU",
            why="CPU fp16 matmul is ~500x slower, and Lightning would train in bf16 instead without saying so",
            fix="use trainer.precision=bf16-mixed or 32",
        )


def _parse(config_path: str | Path, overrides: Sequence[str]) -> tuple[RunConfig, Task, Any, Any]:
    """The run file + overrides, strictly parsed: the run, its task and the task's model and data configs."""
    raw = apply_overrides(load_yaml(config_path), overrides)
    run = from_dict(RunConfig, raw)
    _check_precision(run.trainer)  # before torch and the task are imported: a bad setting answers at once
    task = get_task(run.task)
    model_cfg: Any = from_dict(task.model_config, run.model, prefix="model")
    data_cfg: Any = from_dict(task.data_config, run.data, prefix="data")
    return run, task, model_cfg, data_cfg


def _build_model(task: Task, model_cfg: Any, cfg: TrainerConfig) -> torch.nn.Module:
    """The task's model, initialised under `trainer.seed` without touching the global RNG, then loaded from
    `trainer.init_from` (an exported checkpoint directory) when set."""
    import torch

    from genmotion.checkpoint import load_weights

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = task.build_model(model_cfg)
    if cfg.init_from:
        if not Path(cfg.init_from, WEIGHTS_NAME).is_file():
            raise InputError(
                f"cannot initialise from {cfg.init_from}: it holds no {WEIGHTS_NAME}",
                fix="name an exported checkpoint directory (e.g. <out_dir>/model), or drop trainer.init_from",
            )
        load_weights(model, cfg.init_from)
    return model


def _trainer(cfg: TrainerConfig, out: Path) -> L.Trainer:
    """The Lightning trainer of the run: safetensors checkpoints under `<out>/checkpoints/`, CSV logs."""
    import lightning as L

    from genmotion.train.ckpt_io import SafetensorsCheckpointIO
    from genmotion.train.module import SafetensorsModelCheckpoint

    checkpoints = SafetensorsModelCheckpoint(
        dirpath=out / "checkpoints",
        filename="step{step}",
        auto_insert_metric_name=False,
        save_last=True,
        every_n_train_steps=cfg.ckpt_every or None,
        save_top_k=-1,
    )
    return L.Trainer(
        max_steps=cfg.max_steps,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        precision=cfg.precision,
        plugins=[SafetensorsCheckpointIO()],
        callbacks=[checkpoints],
        logger=L.pytorch.loggers.CSVLogger(str(out), name="logs"),
        log_every_n_steps=cfg.log_every,
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        gradient_clip_val=cfg.grad_clip or None,
        default_root_dir=str(out),
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
    )


def _export(
    run: RunConfig,
    task: Task,
    model: torch.nn.Module,
    configs: tuple[Any, Any],
    trainer: L.Trainer,
    seconds: float,
    command: str | None,
) -> TrainResult:
    """Evaluate the trained model, write `run.yaml` and `<out_dir>/model/` (bf16 weights + card)."""
    import torch

    model_cfg, data_cfg = configs
    out = Path(run.trainer.out_dir)
    model.eval()
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    metrics.update(task.evaluate(model, model_cfg, data_cfg))
    out.mkdir(parents=True, exist_ok=True)
    save_config(run, out / "run.yaml")
    command = command or "genmotion " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    export = save_pretrained(out / "model", model, task.checkpoint_config(model_cfg, data_cfg), dtype=torch.bfloat16)
    write_card(
        export,
        run=run,
        command=command,
        steps=trainer.global_step,
        seconds=seconds,
        metrics=metrics,
        world_size=trainer.world_size,
    )
    log.info("exported %s after %d steps in %.1f s", export, trainer.global_step, seconds)
    return TrainResult(export, trainer.global_step, seconds, metrics)


def train(config_path: str | Path, overrides: Sequence[str] = (), command: str | None = None) -> TrainResult:
    """Run the training file `config_path` (+ `a.b=c` overrides); export `<out_dir>/model/`."""
    run, task, model_cfg, data_cfg = _parse(config_path, overrides)
    cfg = run.trainer
    # Lightning costs seconds to import: only after the recipe is known to be valid.
    import torch

    from genmotion.train.module import TaskModule

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    model = _build_model(task, model_cfg, cfg)
    trainer = _trainer(cfg, out)
    data = task.dataloader(
        data_cfg,
        cfg.batch_size,
        seed=cfg.seed * 1000 + trainer.global_rank,
        rank=trainer.global_rank,
        world_size=trainer.world_size,
    )
    resume = _resume_path(cfg, out / "checkpoints")
    start = time.perf_counter()
    trainer.fit(TaskModule(task, model, cfg), train_dataloaders=data, ckpt_path=resume)
    seconds = time.perf_counter() - start
    trainer.save_checkpoint(out / "checkpoints" / "last.safetensors")  # resumable, whether finished or interrupted
    if trainer.interrupted:
        log.warning("interrupted at step %d; resume with --set trainer.resume=last", trainer.global_step)
        raise KeyboardInterrupt
    if not trainer.is_global_zero:
        return TrainResult(None, trainer.global_step, seconds, {})
    return _export(run, task, model, (model_cfg, data_cfg), trainer, seconds, command)
