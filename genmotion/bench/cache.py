"""`genmotion bench cache`: every cache policy against the exact computation, on one small causal flow model.

The model is `TinyFlowModel` built from a fixed seed and briefly fitted by flow matching (Ca2-VDM style:
a clean prefix at `CLEAN_TIME`, then one noisy chunk) to toy latent videos of travelling waves, so its
attention follows the data rather than random weights. For each policy and video length, side by side in
one process, with the same model, seed, clean prefix and noise: wall seconds of denoising (no decoding to
pixels: there is no decoder), speedups, forwards skipped, peak cache bytes, and fidelity to `Recompute`
(MSE, PSNR on latents mapped to [0, 1] by the exact output's range), temporal flicker and the
chunk-discontinuity ratio. Also the FLOP-count ideal of `SharedClean` vs `Recompute` and FlowCache's
threshold curve. Threads are whatever the caller fixed.
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

import torch
from torch import nn

from genmotion.bench.report import bar_chart
from genmotion.cache import CachePolicy, FrameLayout, HeadProfile, parse_policy, profile_heads
from genmotion.engine.flow import FlowLoopConfig, flow_stream
from genmotion.nn.tiny import TinyFlowModel, TinyFlowModelConfig, TinyTransformerConfig
from genmotion.sampling.flow import CLEAN_TIME, flow_path, velocity_target

__all__ = [
    "CacheBenchConfig",
    "chunk_discontinuity",
    "fit_flow_model",
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


@dataclass(frozen=True, kw_only=True)
class CacheBenchConfig:
    """Sizes of the cache benchmark. The defaults are the reported setting; `quick()` is the smoke setting."""

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
    warmup: int = 5
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
        return cls(num_steps=12, fit_steps=150, repeats=1, thresholds=(0.01, 0.03, 0.1, 0.3))

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


# ---- the model and its toy data ----------------------------------------------------------------
def seeded_tiny_flow_model(config: TinyFlowModelConfig, seed: int, *, spatial_std: float = 0.02) -> TinyFlowModel:
    """A TinyFlowModel whose weights depend only on `seed` (drawn from a generator, no global seeding).

    Linear layers get PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the in-frame token embedding
    gets N(0, spatial_std) (the model's own init is 0.02; the bench uses a larger one so that a short fit
    learns to match tokens across frames).
    """
    model = TinyFlowModel(config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.in_features)
                module.weight.uniform_(-bound, bound, generator=gen)
                if module.bias is not None:
                    module.bias.uniform_(-bound, bound, generator=gen)
        model.spatial.normal_(0.0, spatial_std, generator=gen)
    return model.eval()


def travelling_waves(batch: int, frames: int, layout: FrameLayout, generator: torch.Generator) -> torch.Tensor:
    """(B, F, N, C) toy latents: channel c is a sine of spatial frequency c + 1 moving at a per-clip speed."""
    N, C = layout.tokens_per_frame, layout.channels
    amp = 0.5 + 0.5 * torch.rand(batch, 1, 1, C, generator=generator)
    phase = 2 * math.pi * torch.rand(batch, 1, 1, C, generator=generator)
    speed = 1.2 * torch.rand(batch, 1, 1, C, generator=generator) - 0.6  # radians per frame
    space = (2 * math.pi / N) * torch.arange(N).view(1, 1, N, 1) * torch.arange(1, C + 1).view(1, 1, 1, C)
    time_ = torch.arange(frames, dtype=torch.float32).view(1, frames, 1, 1)
    return amp * torch.sin(space + phase + speed * time_)


def fit_flow_model(
    model: TinyFlowModel, layout: FrameLayout, cfg: CacheBenchConfig, generator: torch.Generator
) -> list[float]:
    """Flow matching on chunks after a clean prefix of a random number of chunks; returns the loss curve."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    N, F = layout.tokens_per_frame, layout.frames_per_chunk
    losses = []
    model.train()
    for _ in range(cfg.fit_steps):
        clips = travelling_waves(cfg.fit_batch, cfg.fit_frames, layout, generator)
        prefix = F * int(torch.randint(0, cfg.fit_frames // F, (1,), generator=generator))
        C = layout.channels
        x1 = clips[:, prefix : prefix + F].reshape(cfg.fit_batch, F * N, C)
        x0 = torch.randn(x1.shape, generator=generator)
        t = torch.rand(cfg.fit_batch, 1, 1, generator=generator)
        context = clips[:, :prefix].reshape(cfg.fit_batch, prefix * N, C)
        inputs = torch.cat([context, flow_path(x0, x1, t)], dim=1)
        t_BL = torch.cat([torch.full((cfg.fit_batch, prefix * N), CLEAN_TIME), t.view(-1, 1).expand(-1, F * N)], 1)
        v = model(inputs, t_BL, layout.frame_ids(0, inputs.shape[1]))[:, prefix * N :]
        loss = (v - velocity_target(x0, x1)).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


# ---- metrics ------------------------------------------------------------------------------------
def latent_fidelity(out: torch.Tensor, exact: torch.Tensor) -> dict[str, float | None]:
    """MSE and max |diff| of latents, and PSNR after mapping both to [0, 1] by the exact output's range."""
    lo, hi = exact.min(), exact.max()
    unit = lambda x: ((x - lo) / (hi - lo)).clamp(0, 1)
    mse01 = float((unit(out) - unit(exact)).pow(2).mean())
    return {
        "mse": float((out - exact).pow(2).mean()),
        "max_abs_diff": float((out - exact).abs().max()),
        "psnr_db": 10 * math.log10(1.0 / mse01) if mse01 > 0 else None,
    }


def temporal_flicker(latents_BFNC: torch.Tensor, lo: float, hi: float) -> float:
    """(1 - mean |frame_t - frame_t+1|) on latents mapped to [0, 1] by [lo, hi] (DESIGN §6, 255 -> 1)."""
    x = ((latents_BFNC - lo) / (hi - lo)).clamp(0, 1)
    return 1.0 - float((x[:, 1:] - x[:, :-1]).abs().mean())


def chunk_discontinuity(latents_BFNC: torch.Tensor, frames_per_chunk: int) -> float:
    """Mean frame-difference magnitude at chunk boundaries over the mean of all consecutive pairs (1 = seamless).

    A pair's magnitude is the mean |frame_t+1 - frame_t|; a boundary pair ends at a chunk's first frame.
    """
    diffs = (latents_BFNC[:, 1:] - latents_BFNC[:, :-1]).abs().mean(dim=(0, 2, 3))  # (F - 1,)
    boundary = (torch.arange(1, latents_BFNC.shape[1]) % frames_per_chunk) == 0
    if not bool(boundary.any()):
        return 1.0
    return float(diffs[boundary].mean() / diffs.mean())


# ---- FLOP counts ---------------------------------------------------------------------------------
def flow_model_flops(config: TinyFlowModelConfig, tokens: int, visible_pairs: int) -> int:
    """Matmul FLOPs of one TinyFlowModel forward over `tokens` new tokens with `visible_pairs` (query, key) pairs."""
    t = config.transformer
    hidden = int(t.dim * t.mlp_ratio)
    per_token = 2 * config.channels * t.dim * 2 + 2 * 2 * t.cond_dim**2  # proj in/out, time MLP
    per_token += t.depth * 2 * (6 * t.cond_dim * t.dim + 4 * t.dim * t.dim + 2 * t.dim * hidden)
    return tokens * per_token + t.depth * 2 * 2 * visible_pairs * t.dim


def policy_flops(
    config: TinyFlowModelConfig, layout: FrameLayout, *, chunks: int, steps: int, prefix_frames: int, shared: bool
) -> int:
    """Useful FLOPs of a whole generation: `Recompute` (shared=False) or `SharedClean` (shared=True)."""
    N, F = layout.tokens_per_frame, layout.frames_per_chunk
    pairs = lambda first, end: N * N * sum(f + 1 for f in range(first, end))
    total = flow_model_flops(config, prefix_frames * N, pairs(0, prefix_frames)) if shared and prefix_frames else 0
    for i in range(chunks):
        s = prefix_frames + i * F
        if shared:
            one = flow_model_flops(config, F * N, pairs(s, s + F))
            total += one * (steps + (1 if i < chunks - 1 else 0))
        else:
            total += steps * flow_model_flops(config, (s + F) * N, pairs(0, s + F))
    return total


# ---- measuring ------------------------------------------------------------------------------------
Maker = Callable[[], CachePolicy]


@dataclass
class _Run:
    latents: torch.Tensor
    seconds: float
    policy: CachePolicy
    peak_bytes: int


class _Bench:
    """The fixed model, prefix and seed every policy runs with; policies of one group are timed round-robin."""

    def __init__(self, cfg: CacheBenchConfig, model: TinyFlowModel, prefix: torch.Tensor) -> None:
        self.cfg, self.model, self.prefix = cfg, model, prefix

    def _once(self, make: Maker, chunks: int) -> _Run:
        layout = self.cfg.layout
        loop = FlowLoopConfig(num_frames=chunks * layout.frames_per_chunk, num_steps=self.cfg.num_steps)
        policy, peak, parts = make(), 0, []
        gen = torch.Generator().manual_seed(self.cfg.seed)
        start = time.perf_counter()
        for chunk in flow_stream(self.model, policy, layout, loop, generator=gen, prefix_BFNC=self.prefix):
            parts.append(chunk.latents)
            peak = max(peak, policy.bytes_held())
        return _Run(torch.cat(parts, dim=1), time.perf_counter() - start, policy, peak)

    def measure(self, makers: dict[str, Maker], chunks: int) -> dict[str, _Run]:
        """Every policy `repeats` times, interleaved (so load from other processes hits all alike); median time.

        Latents, stats and bytes come from the first pass (every pass gives the same ones).
        """
        first: dict[str, _Run] = {}
        times: dict[str, list[float]] = {name: [] for name in makers}
        for _ in range(max(1, self.cfg.repeats)):
            for name, make in makers.items():
                log.info("%s at %d chunks", name, chunks)
                run = self._once(make, chunks)
                first.setdefault(name, run)
                times[name].append(run.seconds)
        return {name: dataclasses.replace(run, seconds=statistics.median(times[name])) for name, run in first.items()}


def _row(run: _Run, exact: _Run, shared: _Run, cfg: CacheBenchConfig) -> dict[str, Any]:
    stats = run.policy.stats
    lo, hi = float(exact.latents.min()), float(exact.latents.max())
    evaluations = stats.forwards_run + stats.forwards_skipped
    return {
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
        "discontinuity_ratio": chunk_discontinuity(run.latents, cfg.frames_per_chunk),
    }


def _policies(cfg: CacheBenchConfig, model: TinyFlowModel, profile: HeadProfile, thresh: float) -> dict[str, Maker]:
    """Every policy of the table. flowcache-kv gets the rolling window's bytes; flowcache reads proj_in(x)."""
    W, N = cfg.rolling_window, cfg.tokens_per_frame
    step = {"thresh": thresh, "warmup": cfg.warmup, "embed": model.proj_in}
    return {
        "recompute": partial(parse_policy, "recompute"),
        "shared": partial(parse_policy, "shared"),
        "rolling": partial(parse_policy, "rolling", sink=1, window=W),
        "flowcache": partial(parse_policy, "flowcache", **step),
        "flowcache-kv": partial(parse_policy, "flowcache-kv", budget=(1 + W) * N),
        "forcing-kv": partial(parse_policy, "forcing-kv", profile=profile),
        "flowcache+forcing-kv": partial(parse_policy, "flowcache+forcing-kv", profile=profile, **step),
        "flowcache+flowcache-kv": partial(parse_policy, "flowcache+flowcache-kv", budget=(1 + W) * N, **step),
    }


def _threshold_curve(cfg: CacheBenchConfig, bench: _Bench, model: TinyFlowModel) -> tuple[list[Any], dict[str, Any]]:
    """ChunkReuse over SharedClean at `curve_chunks` for every threshold, and the operating point it picks."""
    makers: dict[str, Maker] = {
        "recompute": partial(parse_policy, "recompute"),
        "shared": partial(parse_policy, "shared"),
    }
    for thresh in cfg.thresholds:
        makers[str(thresh)] = partial(parse_policy, "flowcache", thresh=thresh, warmup=cfg.warmup, embed=model.proj_in)
    runs = bench.measure(makers, cfg.curve_chunks)
    exact, shared = runs["recompute"], runs["shared"]
    curve = [
        {"thresh": t, "in_flowcache_range": 0.005 <= t <= 0.03, **_row(runs[str(t)], exact, shared, cfg)}
        for t in cfg.thresholds
    ]
    good = [c for c in curve if c["psnr_db"] is None or c["psnr_db"] >= 30.0]
    point = max(good, key=lambda c: c["thresh"]) if good else min(curve, key=lambda c: c["thresh"])
    rule = "largest threshold on the curve with PSNR >= 30 dB vs exact (else the smallest)"
    return curve, {"thresh": point["thresh"], "rule": rule, "chunks": cfg.curve_chunks}


def _length(cfg: CacheBenchConfig, bench: _Bench, makers: dict[str, Maker], n: int) -> tuple[dict[str, Any], Any]:
    """The table at `n` chunks (plus a rolling window of forcing-kv's bytes), and the FLOP ideal of shared."""
    runs = bench.measure(makers, n)
    exact, shared = runs["recompute"], runs["shared"]
    rows = {name: _row(run, exact, shared, cfg) for name, run in runs.items()}
    per_frame = rows["rolling"]["peak_cache_bytes"] / (1 + cfg.rolling_window)
    window = max(1, round(rows["forcing-kv"]["peak_cache_bytes"] / per_frame) - 1)
    eq = bench.measure({"eq": partial(parse_policy, "rolling", sink=1, window=window)}, n)["eq"]
    rows["rolling@forcing-kv-bytes"] = {"window": window, **_row(eq, exact, shared, cfg)}
    flops = [
        policy_flops(
            cfg.model_config, cfg.layout, chunks=n, steps=cfg.num_steps, prefix_frames=cfg.frames_per_chunk, shared=s
        )
        for s in (False, True)
    ]
    measured = rows["shared"]["speedup_vs_recompute"]
    ideal = {
        "recompute_flops": flops[0],
        "shared_flops": flops[1],
        "ideal_speedup": flops[0] / flops[1],
        "measured_speedup": measured,
        "fraction_of_ideal": measured / (flops[0] / flops[1]),
    }
    return rows, ideal


def _targets(results: dict[str, Any], cfg: CacheBenchConfig) -> dict[str, Any]:
    """Every target of issue 4 that this model can answer, with its measured value; met or not."""
    by_len, top = results["lengths"], str(max(cfg.lengths))
    mid = str(16 if 16 in cfg.lengths else max(cfg.lengths))
    rows = by_len[top]
    out: dict[str, Any] = {}

    def target(name: str, value: Any, goal: str, met: bool) -> None:
        out[name] = {"value": value, "target": goal, "met": bool(met)}

    shared_diff = max(r["shared"]["max_abs_diff"] for r in by_len.values())
    target("shared_equals_recompute", shared_diff, "max abs latent diff <= 1e-5", shared_diff <= 1e-5)
    ideal = results["flop_ideal"][mid]
    target(
        f"shared_speedup_of_flop_ideal_at_{mid}",
        ideal["fraction_of_ideal"],
        ">= 0.8",
        ideal["fraction_of_ideal"] >= 0.8,
    )
    good = [c for c in results["threshold_curve"] if c["psnr_db"] is None or c["psnr_db"] >= 30.0]
    best = max((c["speedup_vs_shared"] for c in good), default=0.0)
    target("flowcache_speedup_vs_shared_at_psnr30", best, ">= 2x over shared at PSNR >= 30 dB", best >= 2.0)
    ir_bytes = sorted({r["flowcache-kv"]["peak_cache_bytes"] for r in by_len.values()})
    target("flowcache_kv_bytes_flat", ir_bytes, "the same peak bytes at every length", len(ir_bytes) == 1)
    psnr = lambda r, k: r[k]["psnr_db"] if r[k]["psnr_db"] is not None else math.inf  # None: identical
    ir_vs = {n: [r["flowcache-kv"]["psnr_db"], r["rolling"]["psnr_db"]] for n, r in by_len.items()}
    target(
        "flowcache_kv_psnr_vs_rolling_equal_bytes",
        ir_vs,
        ">= rolling's PSNR",
        all(psnr(r, "flowcache-kv") >= psnr(r, "rolling") for r in by_len.values()),
    )
    fkv, shared = rows["forcing-kv"], rows["shared"]
    saving = 1.0 - fkv["peak_cache_bytes"] / shared["peak_cache_bytes"]
    target(f"forcing_kv_bytes_saving_at_{top}", saving, ">= 0.5 vs the full window (shared)", saving >= 0.5)
    target(
        f"forcing_kv_speedup_vs_shared_at_{top}", fkv["speedup_vs_shared"], ">= 1.3", fkv["speedup_vs_shared"] >= 1.3
    )
    target(f"forcing_kv_psnr_at_{top}", fkv["psnr_db"], ">= 28 dB", psnr(rows, "forcing-kv") >= 28.0)
    eq = rows["rolling@forcing-kv-bytes"]
    disc = [fkv["discontinuity_ratio"], eq["discontinuity_ratio"]]
    target(f"forcing_kv_discontinuity_vs_rolling_at_{top}", disc, "<= rolling at equal bytes", disc[0] <= disc[1])
    product = rows["flowcache"]["speedup_vs_shared"] * fkv["speedup_vs_shared"]
    combo = rows["flowcache+forcing-kv"]["speedup_vs_shared"]
    target(
        f"composition_vs_product_at_{top}",
        [combo, product],
        "within 20 % of the product",
        abs(combo / product - 1) <= 0.2,
    )
    return out


def run_cache_bench(cfg: CacheBenchConfig | None = None) -> dict[str, Any]:
    """Fit, profile, then measure every policy at every length (see the module doc)."""
    cfg = CacheBenchConfig() if cfg is None else cfg
    layout, gen = cfg.layout, torch.Generator().manual_seed(cfg.seed)
    model = seeded_tiny_flow_model(cfg.model_config, cfg.seed, spatial_std=cfg.spatial_std)
    log.info("fitting the tiny flow model for %d steps", cfg.fit_steps)
    start = time.perf_counter()
    losses = fit_flow_model(model, layout, cfg, gen) if cfg.fit_steps else []
    fit_seconds = time.perf_counter() - start
    model.eval()
    prefix = travelling_waves(1, cfg.frames_per_chunk, layout, gen)
    profile = profile_heads(model, layout, generator=gen, num_chunks=cfg.profile_chunks, model_name="bench-tiny")
    bench = _Bench(cfg, model, prefix)
    bench._once(partial(parse_policy, "shared"), 2)  # warm up kernels and the allocator once
    curve, point = _threshold_curve(cfg, bench, model)
    makers = _policies(cfg, model, profile, point["thresh"])
    lengths, flop_ideal = {}, {}
    for n in cfg.lengths:
        lengths[str(n)], flop_ideal[str(n)] = _length(cfg, bench, makers, n)
    fit = {"steps": cfg.fit_steps, "seconds": fit_seconds, "loss_first_20": losses[:20], "loss_last_20": losses[-20:]}
    results: dict[str, Any] = {
        "setting": {
            **dataclasses.asdict(cfg),
            "model": "TinyFlowModel from a seed, fitted by flow matching to toy travelling-wave latents",
            "parameters": sum(p.numel() for p in model.parameters()),
            "fit": fit,
            "inputs": f"a clean prefix chunk of toy latents + noise from seed {cfg.seed}; batch 1",
            "flowcache_embedding": "the model's input projection proj_in(x) (FlowCache compares x_embedder(x))",
            "flowcache_kv_budget": "(1 + rolling_window) * tokens_per_frame = the rolling ring's slots",
            "dtype": "float32",
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "machine": platform.machine(),
            "timing": f"median of {cfg.repeats} passes, policies interleaved per pass, after one warm-up run; "
            "denoising only, no decoding to pixels",
            "exact": "Recompute (no cache) at the same length",
        },
        "head_profile": profile.to_dict(),
        "operating_point": point,
        "threshold_curve": curve,
        "lengths": lengths,
        "flop_ideal": flop_ideal,
    }
    results["targets"] = _targets(results, cfg)
    return results


def plot_cache_bench(results: dict[str, Any], path: str | Path) -> None:
    """Bar panels at the longest length (speedup, PSNR, bytes) and the threshold curve, drawn with PIL."""
    top = max(results["lengths"], key=int)
    rows = results["lengths"][top]
    psnr = lambda r: r["psnr_db"] if r["psnr_db"] is not None else 0.0
    curve = results["threshold_curve"]
    panels = [
        (f"speedup vs recompute at {top} chunks", {k: r["speedup_vs_recompute"] for k, r in rows.items()}),
        (f"PSNR dB vs exact at {top} chunks (0 = identical)", {k: psnr(r) for k, r in rows.items()}),
        (f"peak cache MB at {top} chunks", {k: r["peak_cache_bytes"] / 1e6 for k, r in rows.items()}),
        ("flowcache speedup vs shared by threshold", {f"thresh {c['thresh']}": c["speedup_vs_shared"] for c in curve}),
        ("flowcache PSNR dB by threshold", {f"thresh {c['thresh']}": psnr(c) for c in curve}),
    ]
    bar_chart(panels, path, width=760, label_width=220)
