"""The form of an LBW watermark key, checked without torch (so the CLI answers a bad key at once)."""

from __future__ import annotations

import re

from genmotion.errors import UsageError

__all__ = ["KEY_FORM", "parse_key"]

KEY_PATTERN = re.compile(r"[0-9a-fA-F]{16,64}")
KEY_FORM = "16 to 64 hexadecimal digits (64 to 256 bits), e.g. 5eb63bbbe01eeed0"
KEY_FIX = "make one with: python -c 'import secrets; print(secrets.token_hex(16))'"


def parse_key(key: object) -> bytes:
    """The key's bytes; a key is 16-64 hex digits (upper or lower case, the same key either way)."""
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        shown = repr(key) if isinstance(key, str) and len(key) <= 70 else f"of type {type(key).__name__}"
        raise UsageError(f"bad watermark key {shown}", why=f"a key is {KEY_FORM}", fix=KEY_FIX)
    return bytes.fromhex(key if len(key) % 2 == 0 else "0" + key)
