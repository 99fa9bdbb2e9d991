"""The typer app and the error contract of the CLI.

Commands live in small modules that import torch only inside their bodies, so `genmotion --help`
answers without loading it. Generator packages add their commands through the `genmotion.commands`
entry point group (a `register(app, bench)` function), so the core never imports a generator.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import typer

from genmotion import __version__

__all__ = ["CONVERT_HELP", "app", "bench_app", "command_group", "main"]

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


def command_group(parent: typer.Typer, name: str, help: str) -> typer.Typer:
    """The command group `name` of `parent`, shared by every generator that adds to it (`genmotion convert ...`):
    found on `parent`, else created with `help`."""
    for group in parent.registered_groups:
        if group.name == name and group.typer_instance is not None:
            return group.typer_instance
    group_app = typer.Typer(help=help, no_args_is_help=True)
    parent.add_typer(group_app, name=name)
    return group_app


CONVERT_HELP = "Convert foreign checkpoints, or compose genmotion ones, into genmotion checkpoint directories."


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


_loaded: set[str] = set()  # plugins (entry point names) registered so far; "" is the core


def _load_plugin(ep: EntryPoint) -> None:
    if ep.name in _loaded:
        return
    _loaded.add(ep.name)
    try:
        register = ep.load()
    except ImportError as e:  # a broken plugin must not take the other commands down with it
        log.warning("command %r is unavailable: %s", ep.name, e)
        return
    register(app, bench_app)


def _commands_of(typer_app: typer.Typer) -> set[str]:
    names = {c.name or (c.callback.__name__ if c.callback else "") for c in typer_app.registered_commands}
    return names | {g.name for g in typer_app.registered_groups if g.name}


def _is_known(path: list[str]) -> bool:
    if not path:
        return False
    groups = {g.name: g.typer_instance for g in app.registered_groups if g.name and g.typer_instance}
    if path[0] in groups and len(path) > 1:
        return path[1] in _commands_of(groups[path[0]])
    return path[0] in _commands_of(app) and path[0] not in groups


def _register_commands(args: list[str] | None = None) -> None:
    """Register the core commands and the plugins: the one named like the command first (so a command
    does not wait for every other generator's imports), all of them when that does not find it."""
    if "" not in _loaded:
        _loaded.add("")
        from genmotion.cli import core_commands

        core_commands.register(app, bench_app)
    path = [a for a in (args or []) if not a.startswith("-")][:2]
    plugins = {ep.name: ep for ep in entry_points(group="genmotion.commands")}
    for name in path:
        if name in plugins:
            _load_plugin(plugins[name])
    if _is_known(path):
        return
    for ep in plugins.values():
        _load_plugin(ep)


_built: tuple[tuple[int, ...], Any] | None = None  # the click command of the app, rebuilt when a command is added


def _click_command() -> Any:
    """typer's click command for the app, built once per set of registered commands (building it costs
    tens of milliseconds, which every main() call in a process would pay again)."""
    global _built
    groups = [g.typer_instance for g in app.registered_groups if g.typer_instance is not None]
    key = (len(app.registered_commands), *(len(g.registered_commands) + len(g.registered_groups) for g in groups))
    if _built is None or _built[0] != key:
        _built = (key, typer.main.get_command(app))
    return _built[1]


def _usage_line(e: Exception) -> str:
    """A click usage error as one line: the message and where the help is (the usage block is for --help)."""
    ctx = getattr(e, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else " (see `genmotion --help`)"
    message = e.format_message() if callable(getattr(e, "format_message", None)) else str(e)  # type: ignore[attr-defined]
    return f"genmotion: error: {' '.join(message.split())}{where}"


def _interrupt_code(e: BaseException) -> int:
    from genmotion.runtime import Terminated

    return 143 if isinstance(e, Terminated) else 130


def _run(args: list[str], debug: bool) -> int:
    from genmotion.errors import GenmotionError

    command = _click_command()
    try:
        with command.make_context("genmotion", args) as ctx:
            command.invoke(ctx)
        return 0
    except KeyboardInterrupt as e:  # SIGINT, or SIGTERM (runtime.Terminated); the command said where its output is
        notes = [str(n) for n in getattr(e, "__notes__", []) if n]
        note = notes[-1] if notes else ""
        typer.echo(
            f"genmotion: {note}" if note.startswith("interrupted") else f"genmotion: interrupted{note and ': ' + note}",
            err=True,
        )
        return _interrupt_code(e)
    except Exception as e:  # one line per error; --debug shows the traceback
        if debug:
            import traceback

            traceback.print_exc()
        if isinstance(e, GenmotionError):
            typer.echo(f"genmotion: error: {e}", err=True)
            return e.exit_code
        exit_code = getattr(e, "exit_code", None)
        if type(e).__name__ == "Exit" and isinstance(exit_code, int):  # typer.Exit / ctx.exit(): a plain return
            return exit_code
        if type(e).__name__ == "Abort":
            typer.echo("genmotion: aborted", err=True)
            return 130
        if type(e).__name__ == "NoArgsIsHelpError" and callable(getattr(e, "show", None)):
            e.show()  # type: ignore[attr-defined]  # `genmotion` alone: the help, as asked
            return int(exit_code or 0)
        # typer ships its own copy of click: its usage errors carry `format_message()` and `exit_code`
        if callable(getattr(e, "format_message", None)) and isinstance(exit_code, int):
            typer.echo(_usage_line(e), err=True)
            return exit_code
        typer.echo(f"genmotion: internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", err=True)
        return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code.

    SIGTERM is turned into a KeyboardInterrupt (`runtime.Terminated`) for the duration of the call, so
    `timeout`, container stops and schedulers stop a generation as Ctrl-C does: the partial output is
    finished and the exit code is 130 (SIGINT) or 143 (SIGTERM). The previous handlers are restored after.
    """
    from genmotion.runtime import interrupt_handlers, raise_if_interrupted

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    with interrupt_handlers():
        try:
            _register_commands(args)
            code = _run(args, debug)
            if code == 0:
                raise_if_interrupted()  # a signal whose KeyboardInterrupt some library swallowed
        except KeyboardInterrupt as e:
            typer.echo("genmotion: interrupted", err=True)
            code = _interrupt_code(e)
    return code


if __name__ == "__main__":
    sys.exit(main())
