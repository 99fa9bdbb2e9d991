"""Argument checks every command shares, run before any heavy import (a bad flag answers in well under a
second): finite numbers and ranges, output paths under the suite's output rule, checkpoint kinds.

Each raises `UsageError` (exit 2) or `InputError` (exit 3) with one line saying what, why and the fix.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path

from genmotion.errors import InputError, UsageError

__all__ = [
    "check_checkpoint_kind",
    "check_device_name",
    "check_file_input",
    "check_file_output",
    "check_folder_output",
    "check_number",
    "check_video_output",
    "check_writable",
    "warn_long_prompts",
]

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".gif")


def check_number(
    flag: str,
    value: float | int | None,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """A finite number within [low, high] (open ends with `low_open` / `high_open`); None passes."""
    if value is None:
        return
    if not math.isfinite(value):
        raise UsageError(f"{flag} must be a finite number, got {value}", fix=f"pass a number to {flag}")
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if below or above:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
        where = f"in {lo or '(-inf'}, {hi or 'inf)'}"
        raise UsageError(f"{flag} must be {where}, got {value:g}")


def check_writable(path: Path) -> None:
    """The nearest existing folder above `path` must be a folder this user can write to (exit 3)."""
    existing = path.parent if str(path.parent) else Path(".")
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"cannot write {path}: {existing} is a file, not a folder", fix="choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(
            f"cannot write {path}", why=f"{existing} is not writable", fix="choose a folder you can write to"
        )


def check_folder_output(path: Path, kind: str, force: bool = False) -> None:
    """A folder output of `kind` may go to `path` (absent, empty, or a previous `kind` output; any folder
    with `force`, which moves it aside), and its parent is writable."""
    from genmotion.io.atomic import check_output_folder

    check_output_folder(path, kind, force)
    check_writable(path)


def check_file_output(path: Path, suffixes: tuple[str, ...], flag: str = "-o") -> None:
    """A file output: a known suffix, not a folder, in a writable place."""
    if path.suffix.lower() not in suffixes:
        raise UsageError(
            f"cannot tell the format of {flag} {path}", fix=f"end the name in one of {', '.join(suffixes)}"
        )
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder", fix=f"choose a file name such as out{suffixes[0]}")
    check_writable(path)


def check_video_output(path: str | Path, force: bool = False) -> str:
    """-o of a video: `.mp4`, `.gif`, or a folder for PNG frames (a name ending in '/', or an existing
    frames folder). A bare name without an extension is refused rather than silently becoming a folder.
    Pass the text as typed (a `Path` drops the trailing '/'). Returns 'mp4', 'gif' or 'png'."""
    text = str(path)
    path = Path(text)
    folder = text.endswith(("/", os.sep)) or path.is_dir()
    if not folder and not path.suffix:
        raise UsageError(
            f"-o {path} has no extension",
            why="the format follows the name",
            fix=f"write {path.name}.mp4, {path.name}.gif, or {path.name}/ for a folder of PNG frames",
        )
    if folder:
        check_folder_output(path, "frames", force)
        return "png"
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError(
            f"cannot write video to {path}: unknown suffix {path.suffix!r}",
            fix=f"use {path.with_suffix('.mp4').name}, {path.with_suffix('.gif').name} or {path.with_suffix('')}/",
        )
    if path.is_dir():
        raise UsageError(f"-o {path} is a folder", fix="choose another file name")
    check_writable(path)
    return path.suffix.lower()[1:]


def check_device_name(device: str, flag: str = "--device") -> None:
    """auto, cpu, cuda or cuda:N, checked by name before torch is imported (availability is checked later)."""
    head, _, index = device.partition(":")
    if device in ("auto", "cpu", "cuda") or (head == "cuda" and index.isdigit()):
        return
    raise UsageError(f"unsupported {flag} {device!r}", fix="use auto, cpu, cuda or cuda:N")


def check_file_input(path: Path | None, flag: str) -> None:
    """An input file that must exist and be a file (exit 3, saying which it is)."""
    if path is None:
        return
    if path.is_dir():
        raise InputError(f"{flag} {path} is a folder, not a file", fix=f"pass the file itself to {flag}")
    if not path.exists():
        raise InputError(f"{flag} {path} does not exist", fix="check the path")
    if not os.access(path, os.R_OK):
        raise InputError(f"{flag} {path} is not readable", fix="check its permissions")


def check_checkpoint_kind(name_or_path: str, kinds: tuple[str, ...], command: str) -> str:
    """The checkpoint `kind` of a registry name or directory (read from its config.yaml, no torch); a kind
    this command cannot run is a UsageError naming the command that can."""
    from genmotion.checkpoint import read_checkpoint_config
    from genmotion.registry import resolve

    kind = str(read_checkpoint_config(resolve(name_or_path))["kind"])
    if kind not in kinds:
        hint = {"var": "genmotion image"}.get(kind, f"the command of {kind!r} checkpoints")
        raise UsageError(
            f"--ckpt {name_or_path} is a {kind!r} checkpoint; `genmotion {command}` runs {' or '.join(kinds)}",
            fix=f"use {hint} for it, or pick a {' / '.join(kinds)} checkpoint (see `genmotion models`)",
        )
    return kind


def warn_long_prompts(prompts: Iterable[str]) -> None:
    """Warn (one line per prompt) when a prompt is longer than the text encoder's window, saying how much of
    it is used. Counting needs only the tokenizer file, not the model."""
    long = [p for p in prompts if len(p) > 250]  # a WordPiece token is >= 1 character: shorter ones fit
    if not long:
        return
    try:
        from tokenizers import Tokenizer

        from genmotion.text.loading import find_minilm

        files = find_minilm()
        tokenizer = Tokenizer.from_file(str(files.tokenizer))
        tokenizer.no_truncation()
        window = files.max_length
    except Exception as e:  # the encoder itself reports a missing model later, with its own message
        log.debug("cannot count prompt tokens: %s", e)
        return
    for prompt in long:
        encoding = tokenizer.encode(prompt)
        if len(encoding.ids) <= window:
            continue
        used_chars = encoding.offsets[window - 2][1]  # the last kept token before [SEP]
        log.warning(
            "the prompt has %d tokens but the text encoder reads %d: only its first %d of %d characters "
            "are used (...%r)",
            len(encoding.ids), window, used_chars, len(prompt), prompt[max(0, used_chars - 30) : used_chars],
        )  # fmt: skip
