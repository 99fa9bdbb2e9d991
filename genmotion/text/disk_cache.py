"""On-disk prompt-embedding cache: one small safetensors file per (model, max length, prompt), written
atomically, so a repeated prompt costs a file read and never loads the encoder at all.

Layout: `<cache>/text/<model fingerprint>-L<max_length>/<key[:2]>/<key>.safetensors`, key = sha256(text).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from genmotion.io.atomic import write_bytes, write_text

__all__ = ["PromptDiskCache", "default_cache_dir", "file_fingerprint"]

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """`$GENMOTION_CACHE` when set, else `~/.cache/genmotion`."""
    env = os.environ.get("GENMOTION_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "genmotion"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def file_fingerprint(paths: list[Path], memo_dir: Path | None = None) -> str:
    """sha256 over the contents of `paths`. Hashing the 90 MB weights takes ~0.1 s, so each file's hash is
    memoised under `memo_dir` by (path, size, mtime): later runs pay a stat.
    """
    combined = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        identity = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        memo = memo_dir / f"{hashlib.sha256(identity.encode()).hexdigest()[:32]}.sha256" if memo_dir else None
        digest = None
        if memo is not None and memo.is_file():
            digest = memo.read_text().strip() or None
        if digest is None:
            digest = _sha256(path)
            if memo is not None:
                try:
                    write_text(memo, digest)
                except Exception as e:  # a read-only cache folder only costs the hash next time
                    log.debug("cannot memoise the hash of %s: %s", path, e)
        combined.update(digest.encode())
    return combined.hexdigest()


class PromptDiskCache:
    """Maps prompt text -> (pooled (D,), tokens (L, D)) float32 CPU tensors in `folder`.

    Reads that fail (a truncated or foreign file) count as misses; writes that fail (a read-only
    disk) are logged once and then skipped, because the cache must never stop generation.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._write_failed = False

    def _file(self, text: str) -> Path:
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return self.folder / key[:2] / f"{key}.safetensors"

    def get(self, text: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        path = self._file(text)
        if not path.is_file():
            return None
        from safetensors.torch import load

        try:
            tensors = load(path.read_bytes())
            return tensors["pooled"], tensors["tokens"]
        except Exception as e:  # a damaged entry is recomputed and overwritten
            log.debug("ignoring the unreadable cache entry %s: %s", path, e)
            return None

    def put(self, text: str, pooled_D: torch.Tensor, tokens_LD: torch.Tensor) -> None:
        if self._write_failed:
            return
        from safetensors.torch import save

        data = save({"pooled": pooled_D.contiguous(), "tokens": tokens_LD.contiguous()}, metadata={"text": text})
        try:
            write_bytes(self._file(text), data)
        except Exception as e:
            self._write_failed = True
            log.warning("cannot write the prompt cache under %s (%s); continuing without it", self.folder, e)
