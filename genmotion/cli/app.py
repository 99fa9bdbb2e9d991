"""The typer app and the error contract of the CLI.

Commands live in small modules that import torch only inside their bodies, so `genmotion --help`
answers without loading it. Generator packages add their commands through the `genmotion.commands`
entry point group (a `register(app, bench)` function), so the core never imports a generator.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points

import typer

from genmotion import __version__

__all__ = ["app", "bench_app", "main"]

log = logging.getLogger("genmotion")

app = typer.Typer(
    name="genmotion",
    help="Autoregressive generation for video and 3D: video, panorama, rig, world, image.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
bench_app = typer.Typer(help="Benchmarks: JSON + PNG plot, side by side in one process.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"genmotion {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level."),
) -> None:
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


_registered = False


def _register_commands() -> None:
    global _registered  # one-time plugin discovery; nothing runs at import
    if _registered:
        return
    _registered = True
    from genmotion.cli import core_commands

    core_commands.register(app, bench_app)
    for ep in entry_points(group="genmotion.commands"):
        try:
            register = ep.load()
        except ImportError as e:  # a broken plugin must not take the other commands down with it
            log.warning("command %r is unavailable: %s", ep.name, e)
            continue
        register(app, bench_app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    _register_commands()
    try:
        app(args=args, prog_name="genmotion", standalone_mode=False)
        return 0
    except typer.Exit as e:
        return e.exit_code
    except KeyboardInterrupt:
        typer.echo("genmotion: interrupted", err=True)
        return 130
    except Exception as e:  # one line per error; --debug shows the traceback
        from genmotion.errors import GenmotionError

        if debug:
            import traceback

            traceback.print_exc()
        # typer ships its own copy of click; its usage errors carry `show()` and `exit_code`
        if callable(getattr(e, "show", None)) and isinstance(getattr(e, "exit_code", None), int):
            e.show()  # type: ignore[attr-defined]
            return int(e.exit_code)  # type: ignore[attr-defined]
        if isinstance(e, typer.Abort):
            typer.echo("genmotion: aborted", err=True)
            return 130
        if isinstance(e, GenmotionError):
            typer.echo(f"genmotion: error: {e}", err=True)
            return e.exit_code
        typer.echo(f"genmotion: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
