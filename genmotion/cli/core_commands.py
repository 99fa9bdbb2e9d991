"""Core commands: models, train, toyworld, profile-heads and `bench core`. Bodies import lazily."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Attach the core commands to the app (called once by `genmotion.cli.app`)."""
