"""A typer app holding only the commands one `register(app, bench_app)` adds, invoked as the CLI would be (the
autouse fixture in tests/conftest.py restores torch's thread count that a bench's --threads sets)."""

from __future__ import annotations

from collections.abc import Callable

import typer
from click.testing import Result
from typer.testing import CliRunner


def invoke(register: Callable[[typer.Typer, typer.Typer], None], args: list[str]) -> Result:
    """`genmotion <args>` on an app with `register`'s commands (and its `bench` group)."""
    app, bench_app = typer.Typer(), typer.Typer()
    app.add_typer(bench_app, name="bench")
    register(app, bench_app)
    return CliRunner().invoke(app, args)
