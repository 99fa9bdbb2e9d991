"""The scale-Markov parts of `genmotion bench image`: HMAR and MVAR against VAR on the toy world.

* class accuracy of hmar-toy (one pass per scale, and with masked refinement: the same 130 tokens per image,
  more passes; the checkpoint's schedule, else `REFINE`) and of mvar-toy, 20 samples per class, seed 0, the
  shipped guidance;
* peak memory of sampling one batch of 64 images (128 rows with guidance) at the largest toy resolution, for
  the model and for var-toy: the peak of the bytes held by tensors that ATen ops create during the run
  (`TensorMemory`: every op output's storage counted once, from its creation until its last tensor dies; the
  KV cache buffers, activations, attention scores and logits included; the weights, which exist before the
  run, and scratch memory inside a kernel excluded), and the K/V bytes VAR carries between scales.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["TensorMemory", "hmar_bench", "mvar_bench", "sampling_memory"]

MEMORY_BATCH = 64
REFINE = (1, 1, 1, 2, 2, 1)  # measured when the checkpoint ships no schedule: refine the 4x4 and 6x6 maps


class TensorMemory(TorchDispatchMode):
    """While active, tracks the bytes of every storage an ATen op creates; `peak` is the most held at once.

    Outputs of view and in-place ops share an input's storage and add a reference, not bytes; storages made
    before the mode (weights, inputs) are never counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._storages: dict[int, list[int]] = {}  # data pointer -> [live tensors, bytes]

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        aliasing = any(r.alias_info is not None for r in func._schema.returns)
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self._track(t, aliasing)
        return out

    def _track(self, t: torch.Tensor, aliasing: bool) -> None:
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key == 0:
            return
        entry = self._storages.get(key)
        if entry is None:
            if aliasing:  # a view or in-place result on a storage from before the mode
                return
            entry = self._storages[key] = [0, storage.nbytes()]
            self.live += entry[1]
            self.peak = max(self.peak, self.live)
        entry[0] += 1
        weakref.finalize(t, self._release, key)

    def _release(self, key: int) -> None:
        entry = self._storages.get(key)
        if entry is None:
            return
        entry[0] -= 1
        if entry[0] == 0:
            self.live -= entry[1]
            del self._storages[key]


def sampling_memory(pipe: Any, batch: int = MEMORY_BATCH, **options: Any) -> dict[str, Any]:
    """Peak tensor bytes of sampling `batch` images of `pipe` (classes cycled, seed 0, `options` to `stream`)."""
    labels = [i % pipe.num_classes for i in range(batch)]
    var = pipe.model.var
    weights = sum(p.numel() * p.element_size() for p in var.parameters())
    with torch.no_grad():
        pipe.generate(labels[:2], num_images=2, seed=0, **options)  # warm-up outside the count
        start = time.perf_counter()
        with TensorMemory() as memory:
            result = pipe.generate(labels, num_images=batch, seed=0, **options)
        seconds = time.perf_counter() - start
    cfg = var.config
    rows = batch * (2 if pipe.sampling.guidance_scale != 1.0 else 1)
    kv = 0 if cfg.markov else 2 * cfg.depth * rows * cfg.num_tokens * cfg.width * 4  # fp32 K and V of all scales
    return {
        "batch": batch,
        "rows": rows,
        "peak_bytes": memory.peak,
        "kv_bytes": kv,
        "transformer_weight_bytes": weights,
        "seconds": seconds,
        "cache_bytes_reported": int(result.cache.max_context_bytes),
    }


def _accuracy_row(pipe: Any, model: str, setting: str, per_class: int, **options: Any) -> dict[str, Any]:
    from genmotion.image_core.bench_run import table_row

    labels = [i % pipe.num_classes for i in range(per_class * pipe.num_classes)]
    start = time.perf_counter()
    images = pipe.generate(labels, num_images=len(labels), seed=0, **options).images
    seconds = time.perf_counter() - start
    tokens = sum(p * p for p in pipe.config.var.patch_nums)
    return table_row(model, setting, labels, np.asarray(images), tokens=tokens, seconds=seconds)


def _memory_vs_var(run: Any, pipe: Any, batch: int, **options: Any) -> dict[str, Any]:
    var_memory = sampling_memory(run.pipe("var-toy"), batch)
    own = sampling_memory(pipe, batch, **options)
    return {"var": var_memory, "model": own, "var_peak_vs_model": var_memory["peak_bytes"] / own["peak_bytes"]}


def hmar_bench(run: Any) -> dict[str, Any]:
    """hmar-toy with one pass per scale and with its shipped refinement schedule; memory against var-toy."""
    pipe = run.pipe("hmar-toy")
    per_class, batch = (2, 8) if run.quick else (20, MEMORY_BATCH)
    K = len(pipe.config.var.patch_nums)
    schedule = pipe.sampling.refine or (REFINE if K == len(REFINE) else (1, 1, *(2,) * (K - 2)))
    one_pass = (1,) * K
    rows = [
        _accuracy_row(pipe, "hmar-toy", "one pass per scale", per_class, refine=one_pass),
        _accuracy_row(pipe, "hmar-toy", f"refine {','.join(map(str, schedule))}", per_class, refine=schedule),
    ]
    memory = _memory_vs_var(run, pipe, batch, refine=schedule)
    rows[0]["peak_bytes"] = sampling_memory(pipe, batch, refine=one_pass)["peak_bytes"]
    rows[1]["peak_bytes"] = memory["model"]["peak_bytes"]
    passes = sum(s * p * p for s, p in zip(schedule, pipe.config.var.patch_nums, strict=True))
    return {"rows": rows, "memory": memory, "refine": list(schedule), "transformer_tokens_refined": passes,
            "refinement_gain": rows[1]["class_accuracy"] - rows[0]["class_accuracy"]}  # fmt: skip


def mvar_bench(run: Any) -> dict[str, Any]:
    """mvar-toy's class accuracy and memory against var-toy."""
    pipe = run.pipe("mvar-toy")
    per_class, batch = (2, 8) if run.quick else (20, MEMORY_BATCH)
    cfg = pipe.config.var
    setting = f"{cfg.neighbourhood_kernel}x{cfg.neighbourhood_kernel} window from scale {cfg.neighbourhood_from}"
    row = _accuracy_row(pipe, "mvar-toy", setting, per_class)
    memory = _memory_vs_var(run, pipe, batch)
    row["peak_bytes"] = memory["model"]["peak_bytes"]
    return {"rows": [row], "memory": memory}
