"""Core commands: `models`, `train`, plus the toy-world, `profile-heads`, `bench core` and `bench cache`
commands of the core modules. Command bodies import torch lazily, so `genmotion --help` stays fast."""

from __future__ import annotations

import typer

__all__ = ["register"]


def models() -> None:
    """List the models the registry can load by name (embedded defaults and installed checkpoints)."""
    from rich.console import Console
    from rich.table import Table

    from genmotion.registry import home_dir, list_models

    entries = list_models()
    table = Table(title="genmotion models")
    for col in ("name", "kind", "source", "size", "summary"):
        table.add_column(col)
    for e in entries:
        table.add_row(e.name, e.kind, e.source, f"{e.size_bytes / 1e6:.1f} MB", e.summary)
    Console().print(table)
    if not entries:
        typer.echo(f"no models found; install checkpoint directories under {home_dir()}")


def train(
    config: str = typer.Argument(..., help="Training YAML (configs/...) or a packaged recipe name (videoar-toy)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set trainer.devices=2"),
) -> None:
    """Train a model from a YAML recipe on Lightning (devices, ddp/fsdp, nodes, precision, resume)."""
    from genmotion.train.recipes import resolve_recipe

    path = resolve_recipe(config)
    from genmotion.train.run import train as run_train

    result = run_train(path, set_)
    if result.checkpoint is not None:
        typer.echo(f"exported {result.checkpoint} ({result.steps} steps, {result.seconds:.1f} s)")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Attach the core commands to the app (called once by `genmotion.cli.app`)."""
    app.command("models")(models)
    app.command("train")(train)
    from genmotion.cli import bench_core, cache_commands, toyworld

    toyworld.register(app, bench_app)
    bench_core.register(app, bench_app)
    cache_commands.register(app, bench_app)
