"""The `flowar` part of `genmotion bench image`: class accuracy of flowar-toy samples as read by the toy-world
detector, at the shipped settings and at fewer Euler steps per scale and without guidance, as rows of the
VAR-family table."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

__all__ = ["flowar_accuracy"]


def flowar_accuracy(pipe: Any, per_class: int, name: str = "flowar-toy", quick: bool = False) -> dict[str, Any]:
    """`per_class` samples of every class (seed 0) per setting: the shipped one, then 4 Euler steps per scale,
    then guidance off; accuracy overall and per class (of the shipped setting) and one table row each."""
    from genmotion.image_core.bench_run import table_row
    from genmotion.image_core.data import classify_toy_images

    labels = [i % pipe.num_classes for i in range(per_class * pipe.num_classes)]
    tokens = sum(p * p for p in pipe.config.flowar.patch_nums)
    settings = [(None, None)] if quick else [(None, None), (None, 4), (1.0, None)]  # (guidance, Euler steps)
    rows, runs = [], []
    for guidance, steps in settings:
        chosen = pipe.settings(guidance, None, steps)
        start = time.perf_counter()
        images = pipe.generate(labels, num_images=len(labels), seed=0, guidance_scale=guidance, num_steps=steps).images
        seconds = time.perf_counter() - start
        setting = f"guidance {chosen.guidance_scale:g}, {chosen.num_steps} Euler steps/scale"
        rows.append(table_row(name, setting, labels, images, tokens=tokens, seconds=seconds))
        runs.append({"sampling": dict(vars(chosen)), "class_accuracy": rows[-1]["class_accuracy"], "images": images})
    read = classify_toy_images(torch.from_numpy(runs[0].pop("images")))
    for run in runs[1:]:
        run.pop("images")
    per = {pipe.class_names[c]: float(np.mean([r == c for r, t in zip(read, labels, strict=True) if t == c]))
           for c in range(pipe.num_classes)}  # fmt: skip
    return {
        "samples": len(labels),
        "class_accuracy": rows[0]["class_accuracy"],
        "euler_steps_per_scale": pipe.sampling.num_steps,
        "per_class": per,
        "runs": runs,
        "rows": rows,
    }
