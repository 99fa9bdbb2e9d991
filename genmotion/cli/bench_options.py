"""The options every `genmotion bench ...` command shares, declared once.

Each is an `Annotated` type for a typer parameter; the command gives the default in its signature
(`threads: BenchThreads = 1`), so a bench keeps its own defaults while the flag names and help texts
are the same everywhere:

    def bench_x(json_path: BenchJson, plot: BenchPlot = None, ckpt: BenchCkpt = "x-toy",
                threads: BenchThreads = 1, quick: BenchQuick = False) -> None:
        check_bench_flags(json_path, plot, threads)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["BenchCkpt", "BenchJson", "BenchPlot", "BenchQuick", "BenchThreads", "check_bench_flags"]

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
