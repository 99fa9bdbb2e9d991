"""`genmotion bench core`: the core speed facts (cached decode, attention backends, GFLOP/s vs peak)."""

from __future__ import annotations

import typer

from genmotion.cli.bench_options import BenchJson, BenchPlot, BenchQuick, BenchThreads, check_bench_flags

__all__ = ["register"]


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add the `core` command to `bench_app` (torch is imported only when it runs)."""

    @bench_app.command("core")
    def core(
        json_path: BenchJson,
        plot: BenchPlot = None,
        threads: BenchThreads = 2,
        quick: BenchQuick = False,
    ) -> None:
        """Decode with cache vs full recompute at 1k tokens, SDPA vs math attention, GFLOP/s vs matmul peak."""
        check_bench_flags(json_path, plot, threads)
        from genmotion.bench.core import CoreBenchConfig, plot_core_bench, run_core_bench
        from genmotion.bench.report import save_results, set_bench_threads

        set_bench_threads(threads)
        results = run_core_bench(CoreBenchConfig.quick() if quick else CoreBenchConfig())
        save_results(results, json_path, plot, plot_core_bench)
        d, a, f = results["decode"], results["attention"], results["forward"]
        typer.echo(
            f"decode @{d['context']}: cached {d['cached_step_ms']:.2f} ms vs recompute {d['recompute_ms']:.2f} ms "
            f"({d['speedup']:.1f}x); sdpa mask/flag {a['mask_over_flag']:.2f}x, math/sdpa {a['math_over_sdpa']:.2f}x; "
            f"forward {f['gflops']:.1f} GFLOP/s = {100 * f['of_peak']:.0f}% of matmul peak "
            f"{results['matmul_peak']['gflops']:.1f}"
        )
