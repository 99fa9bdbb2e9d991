"""`caption-lm`: a character-level causal LM over toy-world captions.

The smallest real task of the suite: it exercises the whole training stack (Lightning, DDP,
safetensors checkpoints, resume, model cards) in seconds, and its held-out perplexity shows whether
the loop learns. Model: `TinyTokenModel`; data: captions drawn from a per-rank generator.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from genmotion.config import to_dict
from genmotion.nn.tiny import TinyTokenModel, TinyTransformerConfig

__all__ = ["CaptionLMData", "CaptionLMModel", "CaptionLMTask", "decode", "encode"]

PAD, BOS, EOS = 0, 1, 2
_OFFSET = 3  # printable ASCII 32..126 follows the specials
VOCAB = _OFFSET + 95


def encode(text: str, length: int) -> torch.Tensor:
    """BOS + characters + EOS, padded or cut to `length` -> (length,) int64."""
    ids = [BOS] + [_OFFSET + ord(c) - 32 for c in text if 32 <= ord(c) < 127] + [EOS]
    ids = (ids + [PAD] * length)[:length]
    return torch.tensor(ids, dtype=torch.long)


def decode(ids: torch.Tensor) -> str:
    out = []
    for i in ids.tolist():
        if i == EOS:
            break
        if i >= _OFFSET:
            out.append(chr(i - _OFFSET + 32))
    return "".join(out)


@dataclass(frozen=True, kw_only=True)
class CaptionLMModel:
    transformer: TinyTransformerConfig = field(default_factory=lambda: TinyTransformerConfig(dim=64, depth=2, heads=4))


@dataclass(frozen=True, kw_only=True)
class CaptionLMData:
    length: int = 96
    eval_captions: int = 64


class _Captions(torch.utils.data.IterableDataset):
    def __init__(
        self, cfg: CaptionLMData, batch_size: int, seed: int, split: Literal["train", "eval"] = "train"
    ) -> None:
        self.cfg, self.batch_size, self.seed, self.split = cfg, batch_size, seed, split

    def __iter__(self) -> Iterator[torch.Tensor]:
        from genmotion.data.toyworld.captions import caption
        from genmotion.data.toyworld.spec import sample_clip_spec

        g = torch.Generator().manual_seed(self.seed)
        while True:
            texts = [caption(sample_clip_spec(g), g, self.split) for _ in range(self.batch_size)]
            yield torch.stack([encode(t, self.cfg.length) for t in texts])


def _loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    x, y = batch[:, :-1], batch[:, 1:]
    logits = model(x, torch.arange(x.shape[1], device=x.device))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), ignore_index=PAD)


class CaptionLMTask:
    """Task protocol implementation (see `genmotion.train.task.Task`)."""

    model_config = CaptionLMModel
    data_config = CaptionLMData

    def build_model(self, model_cfg: CaptionLMModel) -> nn.Module:
        return TinyTokenModel(VOCAB, model_cfg.transformer)

    def dataloader(self, data_cfg: CaptionLMData, batch_size: int, seed: int, rank: int, world_size: int) -> Any:
        return torch.utils.data.DataLoader(_Captions(data_cfg, batch_size, seed), batch_size=None)

    def loss(self, model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return _loss(model, batch), {}

    def checkpoint_config(self, model_cfg: CaptionLMModel, data_cfg: CaptionLMData) -> dict[str, Any]:
        return {"kind": "caption-lm", "model": to_dict(model_cfg), "data": to_dict(data_cfg)}

    def evaluate(self, model: nn.Module, model_cfg: CaptionLMModel, data_cfg: CaptionLMData) -> dict[str, float]:
        """Per-character perplexity on captions written with the held-out templates."""
        batch = next(iter(_Captions(data_cfg, data_cfg.eval_captions, seed=12345, split="eval")))
        with torch.no_grad():
            return {"eval_char_perplexity": math.exp(float(_loss(model, batch)))}
