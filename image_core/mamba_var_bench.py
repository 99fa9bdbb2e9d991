"""The M-VAR part of `genmotion bench image` (`m_var`): class accuracy of m-var-toy as a row of the variants
table, and the inter-scale cost, time per scale against the number of scales decoded before it.

The cost is measured on untrained layers of a larger config (width 256) over many scales of equal size (16
scales of 16x16 tokens by default), so that only what comes before a scale changes from one scale to the next:
* M-VAR, scan state carried: one `Mamba2Mixer` call on the scale's tokens from the carried state;
* M-VAR, re-run: the same mixer re-run over every scale so far (the official code's inference);
* VAR: one `SelfAttention` of the scale's tokens over the KV cache of every scale so far.
And whole blocks decoding a scale: `MambaVARBlock` with its carried state against VAR's `AdaLNSelfAttn` with its
KV cache. Medians of
`repeats` runs per scale; a straight-line fit of time against the scale index gives the growth per scale.

Axis legend: B batch, n tokens of one scale, C width.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genmotion.cache import KVCache
from genmotion.image_core.mamba_scan import Mamba2Mixer, ScanState
from genmotion.image_core.mamba_var import MambaVARBlock, MambaVARConfig
from genmotion.image_core.var_blocks import AdaLNSelfAttn, SelfAttention

__all__ = ["inter_scale_cost", "line_chart", "mvar_accuracy"]

Runner = Callable[[int], None]  # runs scale k (0-based) of one sequence; called for k = 0, 1, ... in order


def mvar_accuracy(pipe: Any, per_class: int) -> dict[str, Any]:
    """`bench.toy_accuracy` on an M-VAR pipeline, with the row of the variants table and the scan-state bytes."""
    from genmotion.image_core.bench import toy_accuracy

    start = time.perf_counter()
    out = toy_accuracy(pipe, per_class)
    seconds = time.perf_counter() - start
    rows = 2 * pipe.num_classes if pipe.sampling.guidance_scale != 1.0 else pipe.num_classes
    out["scan_state_bytes_per_image"] = pipe.model.var.new_cache(rows).nbytes() // pipe.num_classes
    out["rows"] = [{
        "model": "m-var-toy", "setting": f"guidance {pipe.sampling.guidance_scale:g}", "samples": out["samples"],
        "class_accuracy": out["class_accuracy"], "tokens_per_image": pipe.model.var.L,
        "seconds_per_image": seconds / out["samples"], "peak_bytes": None,
    }]  # fmt: skip
    return out


def _per_scale(make: Callable[[], Runner], num_scales: int, repeats: int) -> list[float]:
    """Median seconds of each scale over `repeats` fresh sequences (after one warm-up sequence)."""
    times = np.zeros((repeats, num_scales))
    for r in range(repeats + 1):
        run = make()
        for k in range(num_scales):
            t0 = time.perf_counter()
            run(k)
            if r:
                times[r - 1, k] = time.perf_counter() - t0
    return [float(v) for v in np.median(times, axis=0)]


def _fit(seconds: list[float]) -> dict[str, float]:
    """Straight line through time vs scale index: its slope as a share of the mean time per scale, and the
    mean of the last quarter of the scales against the first quarter."""
    y = np.asarray(seconds)
    slope, _ = np.polyfit(np.arange(len(y), dtype=float), y, 1)
    q = max(1, len(y) // 4)
    return {
        "slope_s_per_scale": float(slope),
        "growth_per_scale_vs_mean": float(slope / y.mean()),
        "last_quarter_vs_first_quarter": float(y[-q:].mean() / y[:q].mean()),
        "total_s": float(y.sum()),
    }


@torch.no_grad()
def _operators(width: int, side: int, num_scales: int, repeats: int) -> dict[str, list[float]]:
    n, heads = side * side, width // 64
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, num_scales * n, width, generator=g)
    mixer = Mamba2Mixer(width, d_state=16, d_conv=4, expand=2, head_dim=64, chunk=64).eval()
    attn = SelfAttention(width, heads, attn_drop=0.0, proj_drop=0.0, attn_l2_norm=True).eval()

    def carried() -> Runner:
        box: list[ScanState | None] = [None]

        def run(k: int) -> None:
            _, box[0] = mixer(x[:, k * n : (k + 1) * n], box[0])

        return run

    def rerun() -> Runner:
        return lambda k: mixer(x[:, : (k + 1) * n])

    def kv() -> Runner:
        cache = KVCache(1, heads, num_scales * n, width // heads)
        return lambda k: attn(x[:, k * n : (k + 1) * n], None, cache)

    return {
        "m-var scan, state carried": _per_scale(carried, num_scales, repeats),
        "m-var scan, re-run over all scales": _per_scale(rerun, num_scales, repeats),
        "var attention over the KV cache": _per_scale(kv, num_scales, repeats),
    }


@torch.no_grad()
def _blocks(width: int, side: int, num_scales: int, repeats: int) -> dict[str, list[float]]:
    heads, n = width // 64, side * side
    config = MambaVARConfig(depth=heads, head_dim=64, ssm_head_dim=64)  # only the block's sizes matter here
    mvar = MambaVARBlock(config, 0.0).eval()
    var = AdaLNSelfAttn(width=width, num_heads=heads, mlp_ratio=4.0, shared_aln=False, norm_eps=1e-6).eval()
    g = torch.Generator().manual_seed(1)
    x, cond = torch.randn(1, num_scales * n, width, generator=g), torch.randn(1, width, generator=g)
    mvar_mod, var_mod = mvar.modulation(cond), var.modulation(cond)

    def mvar_run() -> Runner:
        box: list[ScanState | None] = [None]

        def run(k: int) -> None:
            _, box[0] = mvar(x[:, k * n : (k + 1) * n], mvar_mod, None, box[0])

        return run

    def var_run() -> Runner:
        cache = KVCache(1, heads, num_scales * n, 64)
        return lambda k: var.forward_modulated(x[:, k * n : (k + 1) * n], var_mod, None, cache)

    return {
        "m-var block (attention in the scale, scan, FFN)": _per_scale(mvar_run, num_scales, repeats),
        "var block (attention over the KV cache, FFN)": _per_scale(var_run, num_scales, repeats),
    }


def inter_scale_cost(*, quick: bool = False) -> dict[str, Any]:
    """Seconds per scale against the scale index for the scan (carried / re-run) and VAR's cached attention,
    one layer and whole models; `quick`: 6 scales of 4x4 tokens."""
    width, side, num_scales, repeats = (256, 4, 6, 1) if quick else (256, 16, 16, 5)
    layers = _operators(width, side, num_scales, repeats)
    blocks = _blocks(width, side, num_scales, repeats)
    return {
        "setting": f"width {width}, batch 1, {num_scales} scales of {side}x{side} tokens, untrained, fp32",
        "tokens_per_scale": side * side,
        "layer_seconds_per_scale": layers,
        "block_seconds_per_scale": blocks,
        "fit": {name: _fit(s) for name, s in (layers | blocks).items()},
    }


def line_chart(panels: list[tuple[str, dict[str, list[float]]]], path: str | Path, *, x_label: str) -> Path:
    """Panels of lines, one (title, {name: seconds at x = 1, 2, ...}) each, drawn in milliseconds with a legend,
    stacked in one PNG written atomically (PIL)."""
    from PIL import Image, ImageDraw

    W, H, left, right, top, bottom = 760, 330, 70, 20, 40, 45
    img = Image.new("RGB", (W, H * len(panels)), "white")
    draw = ImageDraw.Draw(img)
    colours = [(200, 60, 50), (230, 150, 40), (60, 100, 190), (60, 160, 90), (120, 80, 170)]
    for p, (title, series) in enumerate(panels):
        y0, n = p * H, max(len(v) for v in series.values())
        y_max = max(max(v) for v in series.values()) * 1.05 or 1.0

        def point(i: int, y: float, y0: int = y0, n: int = n, y_max: float = y_max) -> tuple[float, float]:
            return left + (W - left - right) * i / max(n - 1, 1), y0 + H - bottom - (H - top - bottom) * y / y_max

        draw.text((left, y0 + 12), title, fill="black")
        draw.line([(left, y0 + top), (left, y0 + H - bottom), (W - right, y0 + H - bottom)], fill="black")
        for t in range(5):
            draw.text((8, point(0, y_max * t / 4)[1] - 6), f"{y_max * t / 4 * 1000:.0f} ms", fill="black")
        for i in range(n):
            draw.text((point(i, 0)[0] - 4, y0 + H - bottom + 6), str(i + 1), fill="black")
        draw.text((W // 2 - 40, y0 + H - 18), x_label, fill="black")
        for j, (name, ys) in enumerate(series.items()):
            colour = colours[j % len(colours)]
            draw.line([point(i, y) for i, y in enumerate(ys)], fill=colour, width=2)
            draw.text((left + 12, y0 + top + 4 + 14 * j), name, fill=colour)
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp.png")
    img.save(tmp)
    tmp.replace(out)
    return out
