"""`genmotion bench core`: cached decode vs full recompute, attention backends, achieved vs peak GFLOP/s.

Everything is measured side by side in one process: warm-up, then the median of several runs, fp32,
with the thread count the caller fixed (the CLI sets it; this module never does). Pixels are not
involved anywhere. Results are plain dicts ready for JSON; `plot_core_bench` draws them with PIL.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genmotion.bench.report import bar_chart, time_median
from genmotion.nn.attention import attend
from genmotion.nn.masks import causal_mask
from genmotion.nn.tiny import TinyTransformer, TinyTransformerConfig

__all__ = [
    "CoreBenchConfig",
    "bench_attention",
    "bench_decode",
    "bench_forward_flops",
    "matmul_peak",
    "plot_core_bench",
    "run_core_bench",
    "time_median",
    "transformer_forward_flops",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class CoreBenchConfig:
    """Sizes of the core benchmark. The defaults are the reported setting; `quick()` is for tests."""

    dim: int = 256
    depth: int = 4
    heads: int = 4
    context: int = 1024
    attn_heads: int = 8
    attn_len: int = 1024
    attn_head_dim: int = 64
    matmul_size: int = 2048
    warmup: int = 2
    repeats: int = 7
    seed: int = 0

    @classmethod
    def quick(cls) -> CoreBenchConfig:
        return cls(
            dim=32, depth=2, heads=2, context=64, attn_heads=2, attn_len=64, matmul_size=128, warmup=1, repeats=2
        )


def matmul_peak(
    size: int,
    warmup: int = 2,
    repeats: int = 5,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """(size x size) @ (size x size) in `dtype` at the current thread count: the machine's practical peak to
    compare model throughput against (every bench measures it the same way, in the same run)."""
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator).to(device=device, dtype=dtype) for _ in range(2))

    def product() -> torch.Tensor:
        out = a @ b
        if out.device.type == "cuda":
            torch.cuda.synchronize(out.device)
        return out

    seconds = time_median(product, warmup, repeats)
    return {"size": size, "ms": seconds * 1e3, "gflops": 2 * size**3 / seconds / 1e9}


def transformer_forward_flops(tokens: int, config: TinyTransformerConfig, causal: bool = True) -> int:
    """Matmul FLOPs of one TinyTransformer forward: projections, MLP, and the useful half of causal attention."""
    C, L = config.dim, tokens
    hidden = int(C * config.mlp_ratio)
    linear = 2 * L * (3 * C * C + C * C + 2 * C * hidden)
    attention = 2 * 2 * L * L * C // (2 if causal else 1)
    return config.depth * (linear + attention)


def _tiny(cfg: CoreBenchConfig) -> TinyTransformer:
    # Weights come from the default initialiser; timings do not depend on their values, so no seeding.
    return TinyTransformer(TinyTransformerConfig(dim=cfg.dim, depth=cfg.depth, heads=cfg.heads)).eval()


@torch.no_grad()
def bench_decode(cfg: CoreBenchConfig, model: TinyTransformer, generator: torch.Generator) -> dict[str, Any]:
    """Cost of producing the token at position `context - 1`: one cached decode step vs a full causal forward."""
    n = cfg.context
    x = torch.randn(1, n, cfg.dim, generator=generator)
    pos = torch.arange(n)
    cache = model.new_cache(1, n)
    model(x[:, :-1], pos[:-1], cache=cache)

    def cached_step() -> torch.Tensor:
        cache.crop(n - 1)  # O(1) in linear layout: every timed step sees the same context
        return model(x[:, -1:], pos[-1:], cache=cache)

    cached = time_median(cached_step, cfg.warmup, cfg.repeats)
    full = time_median(lambda: model(x, pos), cfg.warmup, cfg.repeats)
    diff = (cached_step()[0, -1] - model(x, pos)[0, -1]).abs().max().item()
    return {
        "context": n,
        "cached_step_ms": cached * 1e3,
        "recompute_ms": full * 1e3,
        "speedup": full / cached,
        "cache_bytes": cache.nbytes(),
        "max_abs_diff": diff,
    }


@torch.no_grad()
def bench_attention(cfg: CoreBenchConfig, generator: torch.Generator) -> dict[str, Any]:
    """SDPA vs the math reference, each with the causal flag and with an equivalent dense boolean mask."""
    shape = (1, cfg.attn_heads, cfg.attn_len, cfg.attn_head_dim)
    q, k, v = (torch.randn(shape, generator=generator) for _ in range(3))
    mask = causal_mask(cfg.attn_len)
    cases: dict[str, Callable[[], torch.Tensor]] = {
        "sdpa_causal_flag": lambda: attend(q, k, v, is_causal=True, backend="sdpa"),
        "sdpa_bool_mask": lambda: attend(q, k, v, mask=mask, backend="sdpa"),
        "math_causal_flag": lambda: attend(q, k, v, is_causal=True, backend="math"),
        "math_bool_mask": lambda: attend(q, k, v, mask=mask, backend="math"),
    }
    ms = {name: time_median(fn, cfg.warmup, cfg.repeats) * 1e3 for name, fn in cases.items()}
    return {
        "shape_BHLD": list(shape),
        "ms": ms,
        "mask_over_flag": ms["sdpa_bool_mask"] / ms["sdpa_causal_flag"],
        "math_over_sdpa": ms["math_causal_flag"] / ms["sdpa_causal_flag"],
    }


@torch.no_grad()
def bench_forward_flops(
    cfg: CoreBenchConfig, model: TinyTransformer, peak_gflops: float, generator: torch.Generator
) -> dict[str, Any]:
    """Achieved GFLOP/s of one causal forward over `context` tokens, and its fraction of the matmul peak."""
    x = torch.randn(1, cfg.context, cfg.dim, generator=generator)
    pos = torch.arange(cfg.context)
    seconds = time_median(lambda: model(x, pos), cfg.warmup, cfg.repeats)
    flops = transformer_forward_flops(cfg.context, model.config)
    gflops = flops / seconds / 1e9
    return {
        "tokens": cfg.context,
        "ms": seconds * 1e3,
        "flops": flops,
        "gflops": gflops,
        "of_peak": gflops / peak_gflops,
    }


def run_core_bench(cfg: CoreBenchConfig | None = None) -> dict[str, Any]:
    """All three measurements plus the setting they were taken in."""
    cfg = CoreBenchConfig() if cfg is None else cfg
    gen = torch.Generator().manual_seed(cfg.seed)
    log.info("matmul peak at %d^3", cfg.matmul_size)
    peak = matmul_peak(cfg.matmul_size, cfg.warmup, cfg.repeats, gen)
    model = _tiny(cfg)
    params = sum(p.numel() for p in model.parameters())
    log.info("decode: cached step vs recompute at %d tokens", cfg.context)
    decode = bench_decode(cfg, model, gen)
    log.info("attention backends at %d tokens", cfg.attn_len)
    attention = bench_attention(cfg, gen)
    forward = bench_forward_flops(cfg, model, peak["gflops"], gen)
    return {
        "setting": {
            **dataclasses.asdict(cfg),
            "parameters": params,
            "dtype": "float32",
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "machine": platform.machine(),
            "timing": f"median of {cfg.repeats} after {cfg.warmup} warm-up runs; no decoding to pixels",
        },
        "matmul_peak": peak,
        "decode": decode,
        "attention": attention,
        "forward": forward,
    }


def plot_core_bench(results: dict[str, Any], path: str | Path) -> None:
    """Three bar panels (decode, attention, forward vs peak) as a PNG, drawn with PIL (no matplotlib)."""
    d, a, f = results["decode"], results["attention"], results["forward"]
    panels = [
        (f"decode at {d['context']} tokens (ms)", {"cached step": d["cached_step_ms"], "recompute": d["recompute_ms"]}),
        (f"attention {a['shape_BHLD']} (ms)", dict(a["ms"])),
        ("GFLOP/s fp32", {"tiny forward": f["gflops"], "matmul peak": results["matmul_peak"]["gflops"]}),
    ]
    bar_chart(panels, path, width=720, label_width=170)
