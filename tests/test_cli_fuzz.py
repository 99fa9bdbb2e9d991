"""Fuzz the argument parsing of every registered command (found by walking the click tree, so new generators'
commands are covered): exit code in {0, 2, 3, 130}, never a traceback or "internal error", no file left
behind on failure. Each invocation stops at the first heavy import (torch, numpy, a pipeline module):
reaching it means every argument check passed. GENMOTION_FUZZ_EXAMPLES sets the budget (200 in CI).
"""

from __future__ import annotations

import builtins
import contextlib
import io
import os
import tempfile
from pathlib import Path

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import genmotion.cache.compose  # noqa: F401  (loaded once, so the cache-name check runs under the guard)
from genmotion.cli import app as cli
from genmotion.registry import embedded_dir

EXAMPLES = int(os.environ.get("GENMOTION_FUZZ_EXAMPLES", "200"))
HEAVY = ("torch", "lightning", "numpy", "PIL", "av", "rich", "scipy", "decord", "trimesh", "py360convert", "einops")
LIGHT = (  # the genmotion modules an argument check may use
    "genmotion.cli",
    "genmotion.errors",
    "genmotion.runtime",
    "genmotion.io.atomic",
    "genmotion.checkpoint",
    "genmotion.registry",
    "genmotion.config",
    "genmotion.train.recipes",
    "genmotion.train.run",
    "genmotion.train.card",
    "genmotion.train.task",
    "genmotion.train.config",
    "genmotion.cache.compose",
    "genmotion.text.loading",
)


class ReachedHeavyWork(BaseException):
    """Every check passed: the command is about to import its heavy modules."""


@contextlib.contextmanager
def _stop_at_heavy_imports():
    real = builtins.__import__

    def guarded(name, globals=None, locals=None, fromlist=(), level=0):
        full = name if level == 0 else f"{(globals or {}).get('__package__', '')}.{name}"
        root = full.split(".")[0]
        heavy = root in HEAVY or (root == "genmotion" and full != "genmotion" and not full.startswith(LIGHT))
        if heavy and not (full == "genmotion" and not fromlist):
            raise ReachedHeavyWork(full)
        if full == "genmotion" and fromlist and set(fromlist) - {"__version__"}:
            raise ReachedHeavyWork(f"genmotion.{fromlist[0]}")
        return real(name, globals, locals, fromlist, level)

    builtins.__import__ = guarded
    try:
        yield
    finally:
        builtins.__import__ = real


def _leaf_commands() -> list[tuple[list[str], list]]:
    cli._register_commands([])  # every plugin
    root = typer.main.get_command(cli.app)
    out, todo = [], [([], root)]
    while todo:
        path, cmd = todo.pop()
        sub = getattr(cmd, "commands", None)
        if sub:
            todo.extend(([*path, name], c) for name, c in sorted(sub.items()))
        elif path:
            out.append((path, [p for p in cmd.params if p.name != "help"]))
    return sorted(out, key=lambda x: x[0])


COMMANDS = _leaf_commands()
NUMBERS = ["0", "1", "-1", "2", "7", "0.5", "nan", "inf", "-inf", "1e308", "abc", "", "1e-9", "99999999999999999999"]
TEXT = ["", " ", "a red ball moving left", "x", ".", "a=b", "32=the ball turns", "thresh=abc", "thresh=0.1", "é☃"]
PATHS = ["out.mp4", "out/", ".", "", "noext", "x.png", "x.json", "x.gif", "missing.pth", "existing.txt", "userdir",
         "userdir/", "sub/dir/out.mp4", "existing.txt/out.mp4", "/"]  # fmt: skip
CKPTS = ["videoar-toy", "var-toy", "ca2vdm-toy", "broken", "missing", "truncated", "tiny"]


def _values(param) -> st.SearchStrategy[str]:
    descriptor = getattr(param, "type_descriptor", None)
    annotation = str(getattr(descriptor, "annotation", None) or getattr(param, "type", ""))
    choices = list(getattr(getattr(param, "type", None), "choices", []) or [])
    if "int" in annotation or "float" in annotation:
        pool = NUMBERS
    elif "Path" in annotation or param.name in ("out", "out_text", "json_path", "plot"):
        pool = PATHS
    else:
        pool = TEXT + PATHS[:4]
    if param.name in ("ckpt", "model", "var", "vae"):
        pool = CKPTS + pool[:3]
    return st.sampled_from([*map(str, choices), *pool]) | st.text(max_size=12)


@st.composite
def invocations(draw) -> list[str]:
    path, params = draw(st.sampled_from(COMMANDS))
    args = list(path)
    for p in params:
        if not p.opts or not p.opts[0].startswith("-"):  # an argument
            if draw(st.booleans()):
                args.append(draw(st.sampled_from(["videoar-toy", "caption-lm", "missing.yaml", "existing.txt", ""])))
            continue
        if not p.required and not draw(st.integers(0, 2)):
            continue
        flag = draw(st.sampled_from(p.opts))
        if getattr(p, "is_flag", False):
            args.append(flag)
            continue
        for _ in range(draw(st.integers(1, 2)) if p.multiple else 1):
            args += [flag, draw(_values(p))]
    if draw(st.integers(0, 9)) == 0:
        args.insert(draw(st.integers(0, len(args))), draw(st.sampled_from(["--bogus", "-x", "--", "--help", "-v"])))
    return args


def _fixtures(folder: Path, home: Path) -> None:
    (folder / "existing.txt").write_text("mine")
    (folder / "userdir").mkdir()
    (folder / "userdir" / "photo.jpg").write_bytes(b"precious")
    broken = home / "models" / "broken"
    broken.mkdir(parents=True)
    (broken / "config.yaml").write_text("kind: [unclosed\n")
    (broken / "model.safetensors").write_bytes(b"junk")
    truncated = folder / "truncated"
    truncated.mkdir()
    (truncated / "config.yaml").write_text((embedded_dir() / "videoar-toy" / "config.yaml").read_text())
    with open(embedded_dir() / "videoar-toy" / "model.safetensors", "rb") as f:
        (truncated / "model.safetensors").write_bytes(f.read(999))


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_every_command_is_fuzzed():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"video", "image", "toyworld", "train", "models", "convert var", "bench video"} <= names


_ROOT = Path(tempfile.mkdtemp(prefix="genmotion-fuzz-"))
_WORK, _HOME = _ROOT / "work", _ROOT / "home"


def _reset() -> list[str]:
    import shutil

    shutil.rmtree(_ROOT, ignore_errors=True)
    _WORK.mkdir(parents=True)
    _fixtures(_WORK, _HOME)
    return _listing(_WORK)


_BEFORE = _reset()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(args=invocations())
def test_fuzzed_arguments_end_in_a_clear_answer(args):
    global _BEFORE
    err, cwd, saved_home = io.StringIO(), os.getcwd(), os.environ.get("GENMOTION_HOME")
    os.chdir(_WORK)
    os.environ["GENMOTION_HOME"] = str(_HOME)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), _stop_at_heavy_imports():
            try:
                code = cli.main(list(args))
            except ReachedHeavyWork:
                code = None  # all checks passed
    finally:
        os.chdir(cwd)
        if saved_home is None:
            os.environ.pop("GENMOTION_HOME", None)
        else:
            os.environ["GENMOTION_HOME"] = saved_home
    text = err.getvalue()
    if os.environ.get("GENMOTION_FUZZ_LOG"):  # one line per invocation, for the record of a long run
        with open(os.environ["GENMOTION_FUZZ_LOG"], "a") as log:
            log.write(f"{'checks-passed' if code is None else code}\t{args!r}\n")
    assert code in (None, 0, 2, 3, 130), (args, code, text)
    assert "internal error" not in text and "Traceback" not in text, (args, text)
    after = _listing(_WORK)
    if code not in (None, 0):
        lines = [ln for ln in text.splitlines() if ln.startswith("genmotion:")]
        assert len(lines) == 1, (args, text)
        assert after == _BEFORE, (args, text)
    elif after != _BEFORE:
        _BEFORE = _reset()


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["video", "-p", "x", "--fps", "nan"], 2),
        (["video", "-p", "x", "--model", "ca2vdm", "--cache", "flowcache", "--cache-param", "thresh=abc"], 2),
        (["image", "-c", "1", "--ckpt", "videoar-toy"], 2),
        (["train", "videoar-toy", "--set", "trainer.precision=16-mixed"], 2),
        (["toyworld", "--prompt", "x", "-o", "a.mp4"], None),
        (["video", "-p", "x", "-n", "2", "-o", "a.mp4"], None),
    ],
)
def test_the_heavy_import_guard_stops_only_after_the_checks(args, code, tmp_path, monkeypatch):
    """The guard is not vacuous: bad flags are still answered under it, good ones reach the heavy imports."""
    monkeypatch.chdir(tmp_path)
    with _stop_at_heavy_imports():
        try:
            got = cli.main(args)
        except ReachedHeavyWork:
            got = None
    assert got == code
