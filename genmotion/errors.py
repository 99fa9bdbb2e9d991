"""Errors a user can trigger. Each says what went wrong, why, and how to fix it.

The CLI maps them to exit codes: 2 for bad usage (flags, names), 3 for bad input (files, data),
1 for anything internal.
"""

from __future__ import annotations

__all__ = ["GenmotionError", "InputError", "UsageError"]


class GenmotionError(Exception):
    """Base class of every error genmotion raises on purpose."""

    exit_code: int = 1

    def __init__(self, what: str, why: str = "", fix: str = "") -> None:
        parts = [what.rstrip(".") + "."]
        if why:
            parts.append(why.rstrip(".") + ".")
        if fix:
            parts.append(fix.rstrip(".") + ".")
        super().__init__(" ".join(parts))
        self.what, self.why, self.fix = what, why, fix


class UsageError(GenmotionError):
    """A flag, name or value the user typed is not valid (exit 2)."""

    exit_code = 2


class InputError(GenmotionError):
    """A file or data the user gave cannot be used (exit 3)."""

    exit_code = 3
