"""`genmotion bench core`: the core speed facts (cached decode, attention backends, GFLOP/s vs peak)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import typer

from genmotion.cli.bench_options import ConfigBench, config_bench_command

__all__ = ["register"]


def _core_bench() -> ConfigBench:
    from genmotion.bench.core import CoreBenchConfig, plot_core_bench, run_core_bench

    return ConfigBench(run_core_bench, CoreBenchConfig, plot_core_bench, _summary)


def _summary(results: Mapping[str, Any]) -> str:
    d, a, f = results["decode"], results["attention"], results["forward"]
    return (
        f"decode @{d['context']}: cached {d['cached_step_ms']:.2f} ms vs recompute {d['recompute_ms']:.2f} ms "
        f"({d['speedup']:.1f}x); sdpa mask/flag {a['mask_over_flag']:.2f}x, math/sdpa {a['math_over_sdpa']:.2f}x; "
        f"forward {f['gflops']:.1f} GFLOP/s = {100 * f['of_peak']:.0f}% of matmul peak "
        f"{results['matmul_peak']['gflops']:.1f}"
    )


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the `core` command to `bench_app` (torch is imported only when it runs)."""
    bench_app.command("core")(
        config_bench_command(
            "Decode with cache vs full recompute at 1k tokens, SDPA vs math attention, GFLOP/s vs matmul peak.",
            _core_bench,
        )
    )
