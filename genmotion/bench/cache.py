"""`genmotion bench cache`: every cache policy against the exact computation, on one causal flow model.

The model is either the built-in `TinyFlowModel` (`model="tiny"`: built from a fixed seed and briefly
fitted by flow matching to toy latent videos of travelling waves, generated after a clean prefix chunk)
or a trained causal flow video checkpoint (a registry name like `ca2vdm-toy` or a directory), bound to
one prompt with classifier-free guidance, generated from frame 0 with its policies at its trained context
window and decoded to frames (see `genmotion.bench.cache_subject`). For each policy and video length,
side by side in one process, with the same model, seed and noise: wall seconds of denoising (and end to
end with decoding), speedups, forwards skipped, peak cache bytes, fidelity to the exact reference
(latent MSE and PSNR on latents mapped to [0, 1] by the exact output's range; frame PSNR and SSIM when
decoded), temporal flicker and the chunk-discontinuity ratio. Also the FLOP-count ideal of `SharedClean`
vs `Recompute` and `FlowCache`'s threshold curves: FlowCache's input rule with reuse (its own) and with the
linear forecast (`order=1`), the forecast-error rule (`rule="error"`) and, when `corrected_thresholds` are
given, the error rule with reuse and the chord correction of skipped Euler steps (`order=0, correct=True`).
Threads are whatever the caller fixed.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genmotion.bench.cache_metrics import chunk_discontinuity, frame_fidelity, latent_fidelity, temporal_flicker
from genmotion.bench.cache_subject import Subject, describe_policy, pipeline_subject, tiny_subject
from genmotion.bench.cache_tiny import flow_model_flops, policy_flops, seeded_tiny_flow_model, travelling_waves
from genmotion.bench.targets import check_targets, target_bound
from genmotion.cache import CachePolicy, FrameLayout
from genmotion.cache.compose import uses_steps
from genmotion.engine.flow import FlowLoopConfig, flow_stream
from genmotion.nn.tiny import TinyFlowModelConfig, TinyTransformerConfig

__all__ = [
    "CacheBenchConfig",
    "chunk_discontinuity",
    "flow_model_flops",
    "latent_fidelity",
    "plot_cache_bench",
    "policy_flops",
    "run_cache_bench",
    "seeded_tiny_flow_model",
    "temporal_flicker",
    "travelling_waves",
]

log = logging.getLogger(__name__)

TINY_ONLY: tuple[str, ...] = ("tokens_per_frame", "channels", "frames_per_chunk", "dim", "depth", "heads")
TINY_ONLY += ("rolling_window", "fit_steps", "fit_batch", "fit_frames", "spatial_std")


@dataclass(frozen=True, kw_only=True)
class CacheBenchConfig:
    """Sizes of the cache benchmark. The defaults are the reported setting; `quick()` is the smoke setting.

    `model`: "tiny" or a registry name / checkpoint directory; the sizes of the tiny model (`TINY_ONLY`)
    do not apply to a checkpoint, and `prompt` / `guidance_scale` apply only to one.
    """

    model: str = "tiny"
    prompt: str = "a red ball moving left"
    guidance_scale: float = 3.0
    tokens_per_frame: int = 16
    channels: int = 4
    frames_per_chunk: int = 2
    dim: int = 64
    depth: int = 2
    heads: int = 4
    num_steps: int = 24
    lengths: tuple[int, ...] = (4, 8, 16, 32)
    curve_chunks: int = 16
    thresholds: tuple[float, ...] = (0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.2, 0.4, 0.8)
    orders: tuple[int, ...] = (0, 1)  # FlowCache's reuse (0, FlowCache) and linear forecast (1), both curved
    warmup: int = 5
    error_thresholds: tuple[float, ...] = (0.03, 0.05, 0.1, 0.15, 0.2, 0.3)  # rule="error", order 1
    error_warmup: int = 3
    corrected_thresholds: tuple[float, ...] = ()  # rule="error", order 0, correct=True (none: not curved)
    corrected_warmup: int = 2
    rolling_window: int = 7
    fit_steps: int = 600
    fit_batch: int = 8
    fit_frames: int = 6
    spatial_std: float = 0.5
    profile_chunks: int = 8
    repeats: int = 3
    seed: int = 0

    @classmethod
    def quick(cls) -> CacheBenchConfig:
        return cls(num_steps=12, fit_steps=150, repeats=1, thresholds=(0.03, 0.3), error_thresholds=(0.1,))

    @classmethod
    def for_model(cls, model: str = "tiny", *, quick: bool = False, **overrides: Any) -> CacheBenchConfig:
        """The default (or quick) setting for `model`; `overrides` that are not None replace fields. A quick
        checkpoint run stops at 8 chunks; the threshold curve never runs longer than the longest length."""
        cfg = cls.quick() if quick else cls()
        if quick and model != "tiny":
            cfg = dataclasses.replace(cfg, lengths=(4, 8), curve_chunks=8)
        cfg = dataclasses.replace(cfg, model=model, **{k: v for k, v in overrides.items() if v is not None})
        return dataclasses.replace(cfg, curve_chunks=min(cfg.curve_chunks, max(cfg.lengths)))

    @property
    def layout(self) -> FrameLayout:
        return FrameLayout(
            tokens_per_frame=self.tokens_per_frame, channels=self.channels, frames_per_chunk=self.frames_per_chunk
        )

    @property
    def model_config(self) -> TinyFlowModelConfig:
        transformer = TinyTransformerConfig(dim=self.dim, depth=self.depth, heads=self.heads, cond_dim=32)
        return TinyFlowModelConfig(
            channels=self.channels, tokens_per_frame=self.tokens_per_frame, transformer=transformer
        )


# ---- measuring ------------------------------------------------------------------------------------
Maker = Callable[[], CachePolicy]
NAMES: tuple[str, ...] = ("recompute", "shared", "rolling", "flowcache", "flowcache-kv", "forcing-kv")
NAMES += ("flowcache+forcing-kv", "flowcache+flowcache-kv")


@dataclass
class _Run:
    latents: torch.Tensor
    seconds: float  # denoising
    policy: CachePolicy
    peak_bytes: int
    frames: np.ndarray | None = None  # decoded uint8 (T, H, W, 3)
    decode_seconds: float = 0.0


def _cpu_sdpa_flops(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return int(sdpa_flop_count(query, key, value))


class _Bench:
    """The fixed model, prefix and seed every policy runs with; policies of one group are timed round-robin."""

    def __init__(self, cfg: CacheBenchConfig, subject: Subject) -> None:
        self.cfg, self.subject = cfg, subject

    def _once(self, make: Maker, chunks: int, *, decode: bool = True) -> _Run:
        s = self.subject
        loop = FlowLoopConfig(num_frames=chunks * s.layout.frames_per_chunk, num_steps=self.cfg.num_steps)
        policy, peak, parts = make(), 0, []
        gen = torch.Generator(device=s.device).manual_seed(self.cfg.seed)
        chunks_it = flow_stream(
            s.model, policy, s.layout, loop, generator=gen, prefix_BFNC=s.prefix, device=s.device, dtype=s.dtype
        )
        start = time.perf_counter()
        for chunk in chunks_it:
            parts.append(chunk.latents)
            peak = max(peak, policy.bytes_held())
        run = _Run(torch.cat(parts, dim=1), time.perf_counter() - start, policy, peak)
        if decode and s.decode is not None:
            start = time.perf_counter()
            run.frames = s.decode(run.latents)
            run.decode_seconds = time.perf_counter() - start
        return run

    def measure(self, makers: dict[str, Maker], chunks: int) -> dict[str, _Run]:
        """Every policy `repeats` times, interleaved (so load from other processes hits all alike); median times
        of denoising and of decoding. Latents, frames, stats and bytes come from the first pass (all agree)."""
        first: dict[str, _Run] = {}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in makers}
        for _ in range(max(1, self.cfg.repeats)):
            for name, make in makers.items():
                log.info("%s at %d chunks", name, chunks)
                run = self._once(make, chunks)
                first.setdefault(name, run)
                times[name].append((run.seconds, run.decode_seconds))
        return {
            name: dataclasses.replace(
                run,
                seconds=statistics.median(t for t, _ in times[name]),
                decode_seconds=statistics.median(d for _, d in times[name]),
            )
            for name, run in first.items()
        }

    def flops(self, chunks: int) -> tuple[int, int]:
        """FLOPs of one denoising run of Recompute and of SharedClean: closed form if the subject has one, else
        counted by `FlopCounterMode` (CPU attention counted as the dense kernel it runs)."""
        if self.subject.formula_flops is not None:
            return self.subject.formula_flops(chunks, False), self.subject.formula_flops(chunks, True)
        return self.counted_flops("recompute", chunks), self.counted_flops("shared", chunks)

    def counted_flops(self, name: str, chunks: int) -> int:
        """FLOPs of one denoising run of policy `name`, counted by `FlopCounterMode` (CPU attention counted as
        the dense kernel it runs)."""
        from torch.utils.flop_counter import FlopCounterMode

        cpu_sdpa = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
        mapping = {cpu_sdpa: _cpu_sdpa_flops} if cpu_sdpa is not None else {}
        with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
            self._once(partial(self.subject.policy, name), chunks, decode=False)
        return int(counter.get_total_flops())


def _psnr(row: dict[str, Any]) -> float:
    """The PSNR the targets use: of decoded frames when the model decodes, else of latents (inf: identical)."""
    value = row["frame_psnr_db"] if "frame_psnr_db" in row else row["psnr_db"]
    return math.inf if value is None else float(value)


def _row(run: _Run, exact: _Run, shared: _Run, layout: FrameLayout) -> dict[str, Any]:
    stats = run.policy.stats
    lo, hi = float(exact.latents.min()), float(exact.latents.max())
    evaluations = stats.forwards_run + stats.forwards_skipped
    end_to_end = lambda r: r.seconds + r.decode_seconds
    row: dict[str, Any] = {
        "seconds": run.seconds,
        "speedup_vs_recompute": exact.seconds / run.seconds,
        "speedup_vs_shared": shared.seconds / run.seconds,
        "forwards_run": stats.forwards_run,
        "forwards_skipped": stats.forwards_skipped,
        "skipped_fraction": stats.forwards_skipped / evaluations if evaluations else 0.0,
        "tokens_processed": stats.tokens_processed,
        "peak_cache_bytes": run.peak_bytes,
        **latent_fidelity(run.latents, exact.latents),
        "flicker": temporal_flicker(run.latents, lo, hi),
        "discontinuity_ratio": chunk_discontinuity(run.latents, layout.frames_per_chunk),
    }
    if run.frames is not None and exact.frames is not None:
        row["end_to_end_seconds"] = end_to_end(run)
        row["end_to_end_speedup_vs_recompute"] = end_to_end(exact) / end_to_end(run)
        row["end_to_end_speedup_vs_shared"] = end_to_end(shared) / end_to_end(run)
        row.update(frame_fidelity(run.frames, exact.frames, layout.frames_per_chunk))
    return row


def _policies(cfg: CacheBenchConfig, subject: Subject, point: dict[str, Any]) -> dict[str, Maker]:
    """Every policy of the table, each with the subject's defaults; flowcache parts get the operating point."""
    step = {k: point[k] for k in STEP_KEYS} | {"embed": subject.embed}
    return {name: partial(subject.policy, name, **(step if uses_steps(name) else {})) for name in NAMES}


STEP_KEYS = ("rule", "order", "warmup", "thresh", "correct")  # a FlowCache setting of the curve


def _curve_grid(cfg: CacheBenchConfig) -> list[dict[str, Any]]:
    """The FlowCache settings the curve runs: the input rule at every order and threshold, the error rule
    (order 1) at its thresholds, then the error rule with reuse and the chord correction at its own."""
    grid = [
        {"rule": "input", "order": order, "warmup": cfg.warmup, "thresh": t, "correct": False}
        for order in cfg.orders
        for t in cfg.thresholds
    ]
    grid += [
        {"rule": "error", "order": 1, "warmup": cfg.error_warmup, "thresh": t, "correct": False}
        for t in cfg.error_thresholds
    ]
    return grid + [
        {"rule": "error", "order": 0, "warmup": cfg.corrected_warmup, "thresh": t, "correct": True}
        for t in cfg.corrected_thresholds
    ]


def _threshold_curve(cfg: CacheBenchConfig, bench: _Bench) -> tuple[list[Any], dict[str, Any]]:
    """FlowCache over SharedClean at `curve_chunks` for every setting of `_curve_grid`, and the operating point
    it picks."""
    policy, embed = bench.subject.policy, bench.subject.embed
    makers: dict[str, Maker] = {"recompute": partial(policy, "recompute"), "shared": partial(policy, "shared")}
    grid = _curve_grid(cfg)
    for k, setting in enumerate(grid):
        makers[f"curve{k}"] = partial(policy, "flowcache", **setting, embed=embed)
    runs = bench.measure(makers, cfg.curve_chunks)
    exact, shared = runs["recompute"], runs["shared"]
    layout = bench.subject.layout
    curve = [
        {
            **setting,
            "in_flowcache_range": _variant(setting) == "reuse" and 0.005 <= setting["thresh"] <= 0.03,
            **_row(runs[f"curve{k}"], exact, shared, layout),
        }
        for k, setting in enumerate(grid)
    ]
    good = [c for c in curve if _psnr(c) >= 30.0]
    point = max(good, key=lambda c: c["speedup_vs_shared"]) if good else min(curve, key=lambda c: c["thresh"])
    rule = "the fastest setting on the curve with PSNR >= 30 dB vs exact (else the smallest threshold)"
    return curve, {**{k: point[k] for k in STEP_KEYS}, "rule_of_choice": rule, "chunks": cfg.curve_chunks}


def _length(bench: _Bench, makers: dict[str, Maker], n: int) -> tuple[dict[str, Any], Any, torch.Tensor]:
    """The table at `n` chunks (plus a rolling window of forcing-kv's bytes), the FLOP ideal of shared, and the
    exact (Recompute) latents it compared against."""
    runs = bench.measure(makers, n)
    exact, shared, layout = runs["recompute"], runs["shared"], bench.subject.layout
    rows = {name: _row(run, exact, shared, layout) for name, run in runs.items()}
    rolling = runs["rolling"].policy
    sink, ring = int(getattr(rolling, "sink", 1)), int(getattr(rolling, "sink", 1)) + int(getattr(rolling, "window", 1))
    per_frame = rows["rolling"]["peak_cache_bytes"] / ring
    window = max(1, round(rows["forcing-kv"]["peak_cache_bytes"] / per_frame) - sink)
    extra: dict[str, Maker] = {
        "rolling@forcing-kv-bytes": partial(bench.subject.policy, "rolling", sink=sink, window=window)
    }
    # queries=denoising keeps a whole chunk beside part of the history: it needs a budget above one chunk
    if int(getattr(runs["flowcache-kv"].policy, "budget", 0)) > layout.chunk_tokens:
        extra["flowcache-kv@denoising"] = partial(bench.subject.policy, "flowcache-kv", queries="denoising")
    settings = {"rolling@forcing-kv-bytes": {"window": window}}
    for name, run in bench.measure(extra, n).items():
        rows[name] = {**settings.get(name, {}), **_row(run, exact, shared, layout)}
    flops = bench.flops(n)
    measured = rows["shared"]["speedup_vs_recompute"]
    ideal = {
        "recompute_flops": flops[0],
        "shared_flops": flops[1],
        "ideal_speedup": flops[0] / flops[1],
        "measured_speedup": measured,
        "fraction_of_ideal": measured / (flops[0] / flops[1]),
    }
    if bench.subject.formula_flops is None:  # what pruning keys can save at most: attention is only part of a step
        forcing = bench.counted_flops("forcing-kv", n)
        ideal["forcing_kv_flops"] = forcing
        ideal["forcing_kv_ideal_speedup_vs_shared"] = flops[1] / forcing
    return rows, ideal, exact.latents


def _exactness(bench: _Bench, exact: torch.Tensor, positions: int = 4) -> dict[str, Any]:
    """SharedClean vs Recompute on the same inputs: chunk k denoised by both after the same clean context
    (the exact output's first k chunks, after the subject's prefix) and the same noise, at `positions`
    chunks spread over the video; once with all steps and once with a single evaluation (one velocity:
    what the cache alone changes). Free-running comparisons also feed each policy's own last-bit rounding
    differences (fp32 reduction order) back through every later chunk; this isolates them."""
    s, F = bench.subject, bench.subject.layout.frames_per_chunk
    chunks = exact.shape[1] // F
    picks = sorted({round(i * (chunks - 1) / max(1, positions - 1)) for i in range(positions)})

    def chunk_diff(k: int, steps: int) -> float:
        context = exact[:, : k * F]
        prefix = context if s.prefix is None else torch.cat([s.prefix.to(context), context], dim=1)
        loop, outs = FlowLoopConfig(num_frames=F, num_steps=steps), []
        for name in ("recompute", "shared"):
            gen = torch.Generator(device=s.device).manual_seed(bench.cfg.seed + k)
            given = prefix if prefix.shape[1] else None
            stream = flow_stream(
                s.model,
                s.policy(name),
                s.layout,
                loop,
                generator=gen,
                prefix_BFNC=given,
                device=s.device,
                dtype=s.dtype,
            )
            outs.append(next(iter(stream)).latents)
        return float((outs[0] - outs[1]).abs().max())

    diffs = {str(k): chunk_diff(k, bench.cfg.num_steps) for k in picks}
    single = {str(k): chunk_diff(k, 1) for k in picks}
    return {
        "chunks_after_context": diffs,
        "max_abs_diff": max(diffs.values()),
        "one_evaluation": single,
        "one_evaluation_max_abs_diff": max(single.values()),
    }


def _shown_psnr(row: dict[str, Any]) -> float | None:
    """The PSNR a report shows: of frames when decoded, else of latents; None when identical to exact."""
    return row.get("frame_psnr_db", row["psnr_db"])


def _lengths(results: dict[str, Any], cfg: CacheBenchConfig) -> tuple[dict[str, Any], str, str]:
    """Rows by video length, the longest length and the one the FLOP-ideal target is read at (16 if run)."""
    return results["lengths"], str(max(cfg.lengths)), str(16 if 16 in cfg.lengths else max(cfg.lengths))


def _targets(results: dict[str, Any], cfg: CacheBenchConfig) -> dict[str, Any]:
    """The measured value behind every cache target this model can answer, checked against
    `benchmarks/targets.yaml` (`cache:`). PSNR is that of decoded frames when the model decodes, else of latents
    (see `_psnr`); where a target compares two figures the pair is shown beside its verdict."""
    by_len, top, mid = _lengths(results, cfg)
    rows = by_len[top]
    good = [c for c in results["threshold_curve"] if _psnr(c) >= 30.0]
    ir_bytes = sorted({r["flowcache-kv"]["peak_cache_bytes"] for r in by_len.values()})
    fkv, shared, eq = rows["forcing-kv"], rows["shared"], rows["rolling@forcing-kv-bytes"]
    disc = [fkv["discontinuity_ratio"], eq["discontinuity_ratio"]]
    product = rows["flowcache"]["speedup_vs_shared"] * fkv["speedup_vs_shared"]
    combo = rows["flowcache+forcing-kv"]["speedup_vs_shared"]
    measured = {
        "shared_equals_recompute": results["shared_vs_recompute_same_context"]["max_abs_diff"],
        "shared_speedup_of_flop_ideal": results["flop_ideal"][mid]["fraction_of_ideal"],
        "flowcache_speedup_vs_shared_at_psnr30": max((c["speedup_vs_shared"] for c in good), default=0.0),
        "flowcache_kv_bytes_flat": len(ir_bytes),
        "flowcache_kv_psnr_vs_rolling_equal_bytes": all(
            _psnr(r["flowcache-kv"]) >= _psnr(r["rolling"]) for r in by_len.values()
        ),
        "forcing_kv_bytes_saving": 1.0 - fkv["peak_cache_bytes"] / shared["peak_cache_bytes"],
        "forcing_kv_speedup_vs_shared": fkv["speedup_vs_shared"],
        "forcing_kv_psnr": _psnr(fkv),
        "forcing_kv_discontinuity_vs_rolling": disc[0] / disc[1] if disc[1] else math.inf,
        "composition_vs_product": abs(combo / product - 1),
    }
    shown = {
        "flowcache_kv_bytes_flat": ir_bytes,
        "flowcache_kv_psnr_vs_rolling_equal_bytes": {
            n: [_shown_psnr(r["flowcache-kv"]), _shown_psnr(r["rolling"])] for n, r in by_len.items()
        },
        "forcing_kv_psnr": _shown_psnr(fkv),
        "forcing_kv_discontinuity_vs_rolling": disc,
        "composition_vs_product": [combo, product],
    }
    return _annotate(check_targets("cache", measured, shown), results, cfg, good)


def _annotate(
    out: dict[str, Any], results: dict[str, Any], cfg: CacheBenchConfig, good: list[dict[str, Any]]
) -> dict[str, Any]:
    """Details beside the verdicts: at which length each was measured, per-variant and per-query figures;
    `good` are the threshold-curve points at >= 30 dB."""
    by_len, top, mid = _lengths(results, cfg)
    rows = by_len[top]
    fkv, shared, eq = rows["forcing-kv"], rows["shared"], rows["rolling@forcing-kv-bytes"]
    for name in ("shared_speedup_of_flop_ideal",):
        if name in out:
            out[name]["at_chunks"] = int(mid)
    for name in (
        "forcing_kv_bytes_saving",
        "forcing_kv_speedup_vs_shared",
        "forcing_kv_psnr",
        "composition_vs_product",
    ):
        if name in out:
            out[name]["at_chunks"] = int(top)
    if "flowcache_speedup_vs_shared_at_psnr30" in out:
        out["flowcache_speedup_vs_shared_at_psnr30"]["by_variant"] = {
            variant: max((c["speedup_vs_shared"] for c in good if _variant(c) == variant), default=0.0)
            for variant in dict.fromkeys(_variant(c) for c in results["threshold_curve"])
        }
    if "flowcache_kv_psnr_vs_rolling_equal_bytes" in out:
        out["flowcache_kv_psnr_vs_rolling_equal_bytes"]["queries=denoising"] = {
            n: _shown_psnr(r["flowcache-kv@denoising"]) for n, r in by_len.items() if "flowcache-kv@denoising" in r
        }
    if "frame_discontinuity_ratio" in fkv and "forcing_kv_discontinuity_vs_rolling" in out:
        frames = [
            fkv["frame_discontinuity_ratio"],
            eq["frame_discontinuity_ratio"],
            shared["frame_discontinuity_ratio"],
        ]
        out["forcing_kv_discontinuity_vs_rolling"]["frames_vs_rolling_vs_exact"] = frames
    return out


def run_cache_bench(cfg: CacheBenchConfig | None = None) -> dict[str, Any]:
    """Build (or load) the model, profile, then measure every policy at every length (see the module doc)."""
    cfg = CacheBenchConfig() if cfg is None else cfg
    log.info("preparing model %s", cfg.model)
    subject = tiny_subject(cfg) if cfg.model == "tiny" else pipeline_subject(cfg)
    bench = _Bench(cfg, subject)
    bench._once(partial(subject.policy, "shared"), 2)  # warm up kernels and the allocator once
    curve, point = _threshold_curve(cfg, bench)
    makers = _policies(cfg, subject, point)
    lengths, flop_ideal, exact = {}, {}, {}
    for n in cfg.lengths:
        lengths[str(n)], flop_ideal[str(n)], exact[n] = _length(bench, makers, n)
    same_context = _exactness(bench, exact[max(cfg.lengths)])  # the longest exact video, already generated
    # whole videos, each policy reading its own earlier chunks: rounding differences compound over the length
    same_context["free_running_max_abs_diff"] = max(r["shared"]["max_abs_diff"] for r in lengths.values())
    skip = TINY_ONLY if cfg.model != "tiny" else ("prompt", "guidance_scale")
    decoded = "; end to end adds decoding the whole video to frames" if subject.decode is not None else ""
    results: dict[str, Any] = {
        "setting": {
            **{k: v for k, v in dataclasses.asdict(cfg).items() if k not in skip},
            **subject.setting,
            "dtype": str(subject.dtype).removeprefix("torch."),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "machine": platform.machine(),
            "timing": f"median of {cfg.repeats} passes, policies interleaved per pass, after one warm-up run; "
            f"seconds are denoising only{decoded}",
            "exact": f"{describe_policy(subject.policy('recompute'))}: no cache, every evaluation recomputes "
            "the whole visible history, at the same length",
            "psnr_in_targets": "frames (uint8, peak 255)" if subject.decode is not None else "latents on [0, 1]",
        },
        "head_profile": subject.profile.to_dict(),
        "operating_point": point,
        "threshold_curve": curve,
        "lengths": lengths,
        "flop_ideal": flop_ideal,
        "shared_vs_recompute_same_context": same_context,
    }
    results["targets"] = _targets(results, cfg)
    return results


def plot_cache_bench(results: dict[str, Any], path: str | Path) -> None:
    """Three trade-off panels (PSNR of frames when the model decodes, else of latents; "exact" drawn at a cap):
    FlowCache's speedup over shared against PSNR, one curve per variant over its threshold sweep, the exact
    point and the targets marked; every policy's speedup over recompute against PSNR at the longest length;
    peak cache bytes against video length (flat after the window = bounded)."""
    from genmotion.bench.chart import Series, XYPanel, xy_chart

    lengths = sorted(results["lengths"], key=int)
    top = lengths[-1]
    rows = results["lengths"][top]
    finite = [_psnr(r) for r in [*rows.values(), *results["threshold_curve"]] if math.isfinite(_psnr(r))]
    cap = max(60.0, min(100.0, 10.0 * math.ceil((max(finite, default=55.0) + 5.0) / 10.0)))  # "identical" drawn here
    shown = lambda r: min(_psnr(r), cap)
    variants: dict[str, list[dict[str, Any]]] = {}
    for c in results["threshold_curve"]:
        variants.setdefault(_variant(c), []).append(c)
    sweep = [  # thresholds labelled where the sweep moves (the smallest ones all sit at "exact")
        Series(
            name,
            [(shown(c), c["speedup_vs_shared"]) for c in cs],
            [f"{c['thresh']:g}" if shown(c) < cap - 10 else "" for c in cs],
        )
        for name, cs in variants.items()
    ]
    sweep.append(Series("exact (shared)", [(cap, 1.0)], ["exact"], line=False, marker="*"))
    policies = [Series(k, [(shown(r), r["speedup_vs_recompute"])], [k], line=False) for k, r in rows.items()]
    memory = [
        Series(k, [(float(n), results["lengths"][n][k]["peak_cache_bytes"] / 1e6) for n in lengths])
        for k in rows
        if k != "recompute"
    ]
    target = target_bound("cache", "flowcache_speedup_vs_shared_at_psnr30")
    panels = [
        XYPanel(
            title=f"FlowCache over its threshold sweep ({results['setting'].get('curve_chunks', '?')} chunks;"
            " labels: threshold)",
            x_label=f"PSNR dB vs exact ({cap:g} = identical)",
            y_label="speedup vs shared",
            series=sweep,
            x_targets=[(30.0, "30 dB")],
            y_targets=[(target, f"target {target:g}x")] if target else [],
        ),
        XYPanel(
            title=f"every policy at {top} chunks",
            x_label=f"PSNR dB vs exact ({cap:g} = identical)",
            y_label="speedup vs recompute",
            series=policies,
            log_y=True,
        ),
        XYPanel(title="peak cache bytes", x_label="video length (chunks)", y_label="MB", series=memory),
    ]
    xy_chart(panels, path)


def _variant(row: dict[str, Any]) -> str:
    """A curve row's FlowCache variant in words: "reuse", "forecast" (input rule), "forecast, error rule" or
    "reuse, error rule, corrected" (rows of earlier files have no "correct")."""
    kind = {0: "reuse", 1: "forecast"}.get(row["order"], f"order {row['order']}")
    name = kind if row["rule"] == "input" else f"{kind}, {row['rule']} rule"
    return f"{name}, corrected" if row.get("correct") else name


def _curve_label(row: dict[str, Any]) -> str:
    return f"{_variant(row)} thresh {row['thresh']}"
