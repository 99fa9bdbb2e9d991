"""The options every `genmotion bench ...` command shares, declared once.

Each is an `Annotated` type for a typer parameter; the command gives the default in its signature
(`threads: BenchThreads = 1`), so a bench keeps its own defaults while the flag names and help texts
are the same everywhere:

    def bench_x(json_path: BenchJson, plot: BenchPlot = None, ckpt: BenchCkpt = "x-toy",
                threads: BenchThreads = 1, quick: BenchQuick = False) -> None:
        check_bench_flags(json_path, plot, threads)

A bench that is only "a config (with a `quick()` smoke setting), a run, a chart and a summary line" is declared
with `config_bench_command` instead of writing that command out again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer

__all__ = [
    "BenchCkpt",
    "BenchJson",
    "BenchPlot",
    "BenchQuick",
    "BenchThreads",
    "ConfigBench",
    "check_bench_flags",
    "config_bench_command",
]

BenchJson = Annotated[Path, typer.Option("--json", help="Write the results here (JSON).")]
BenchPlot = Annotated[Path | None, typer.Option("--plot", help="Also draw a PNG chart here.")]
BenchCkpt = Annotated[str, typer.Option("--ckpt", help="Registry name or checkpoint directory to score.")]
BenchThreads = Annotated[int, typer.Option("--threads", help="torch intra-op threads for every measurement.")]
BenchQuick = Annotated[bool, typer.Option("--quick", help="Small, few runs: a smoke test, not a measurement.")]


def check_bench_flags(json_path: Path, plot: Path | None, threads: int | None = None) -> None:
    """UsageError (exit 2), before any work: --json must name a writable .json file, --plot a .png, --threads >= 1."""
    from genmotion.cli.checks import check_file_output, check_number

    check_file_output(json_path, (".json",), "--json")
    if plot is not None:
        check_file_output(plot, (".png",), "--plot")
    check_number("--threads", threads, low=1)


class ConfigBench(NamedTuple):
    """What a config bench runs: `run(config())` (`config.quick()` under --quick), drawn by `plot(results, path)`,
    summed up in the line `summary(results)`."""

    run: Callable[[Any], Mapping[str, Any]]
    config: Any
    plot: Callable[[Any, Any], object]
    summary: Callable[[Mapping[str, Any]], str]


def config_bench_command(doc: str, load: Callable[[], ConfigBench], *, threads: int = 2) -> Callable[..., None]:
    """A `genmotion bench ...` command (help `doc`) with --json, --plot, --threads (default `threads`) and --quick
    that checks them, runs `load()`'s bench (`load` imports it, so torch loads only when the command runs), saves
    the results and echoes the summary line."""
    default_threads = threads

    def command(
        json_path: BenchJson,
        plot: BenchPlot = None,
        threads: BenchThreads = default_threads,
        quick: BenchQuick = False,
    ) -> None:
        check_bench_flags(json_path, plot, threads)
        from genmotion.bench.report import run_bench

        bench = load()
        config = bench.config.quick() if quick else bench.config()
        results = run_bench(lambda: bench.run(config), threads, json_path, plot, bench.plot)
        typer.echo(bench.summary(results))

    command.__doc__ = doc
    return command
