"""MiniLM-L6 (BERT layout) sentence encoder in plain torch: the forward of sentence-transformers'
all-MiniLM-L6-v2 (BERT encoder, mean pooling over the attention mask, L2 normalisation), written out so
loading costs a safetensors read instead of a transformers import (4–7 s on a 2-core CPU).

Axes: B batch, L tokens, D hidden (384), H heads (12), K head width (32), F feed-forward width (1536).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MiniLM", "MiniLMConfig", "mean_pool"]


@dataclass(frozen=True, kw_only=True)
class MiniLMConfig:
    """The BERT hyper-parameters the forward needs, as in the checkpoint's `config.json`."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"

    @classmethod
    def from_json(cls, path: str | Path) -> MiniLMConfig:
        """Read a Hugging Face BERT `config.json`, keeping the keys above and ignoring the rest."""
        raw: dict[str, Any] = json.loads(Path(path).read_text())
        config = cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})
        if config.hidden_act != "gelu" or config.hidden_size % config.num_attention_heads:
            raise ValueError(f"{path} is not a MiniLM/BERT config this encoder supports: {config}")
        return config


# Every parameter comes from the checkpoint, so the layers skip their random init: on CPU it costs 0.2 s,
# and on the meta device it imports torch._dynamo (2.5 s), which would dominate the encoder's cold start.
class _Linear(nn.Linear):
    def reset_parameters(self) -> None:
        return None


class _Embedding(nn.Embedding):
    def reset_parameters(self) -> None:
        return None


class _Embeddings(nn.Module):
    def __init__(self, c: MiniLMConfig) -> None:
        super().__init__()
        self.word_embeddings = _Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = _Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = _Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, input_ids_BL: torch.Tensor) -> torch.Tensor:
        positions_L = torch.arange(input_ids_BL.shape[1], device=input_ids_BL.device)
        x = self.word_embeddings(input_ids_BL) + self.position_embeddings(positions_L)  # (B, L, D)
        x = x + self.token_type_embeddings.weight[0]  # single sentences: token type 0 everywhere
        return self.LayerNorm(x)


class _SelfAttention(nn.Module):
    def __init__(self, c: MiniLMConfig) -> None:
        super().__init__()
        self.num_heads = c.num_attention_heads
        self.query = _Linear(c.hidden_size, c.hidden_size)
        self.key = _Linear(c.hidden_size, c.hidden_size)
        self.value = _Linear(c.hidden_size, c.hidden_size)

    def forward(self, x_BLD: torch.Tensor, mask_B11L: torch.Tensor | None) -> torch.Tensor:
        B, L, D = x_BLD.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(B, L, self.num_heads, D // self.num_heads).transpose(1, 2)  # (B, H, L, K)

        q, k, v = heads(self.query(x_BLD)), heads(self.key(x_BLD)), heads(self.value(x_BLD))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask_B11L)  # (B, H, L, K)
        return out.transpose(1, 2).reshape(B, L, D)


class _AddNorm(nn.Module):
    """Projection, residual add, then LayerNorm (BERT is post-norm): `*.output.{dense,LayerNorm}`."""

    def __init__(self, c: MiniLMConfig, in_features: int) -> None:
        super().__init__()
        self.dense = _Linear(in_features, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, h: torch.Tensor, residual_BLD: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(residual_BLD + self.dense(h))


class _Attention(nn.Module):
    def __init__(self, c: MiniLMConfig) -> None:
        super().__init__()
        self.self = _SelfAttention(c)  # the checkpoint's key is `attention.self.*`
        self.output = _AddNorm(c, c.hidden_size)


class _Intermediate(nn.Module):
    def __init__(self, c: MiniLMConfig) -> None:
        super().__init__()
        self.dense = _Linear(c.hidden_size, c.intermediate_size)


class _Layer(nn.Module):
    """One BERT block; attribute names follow the checkpoint's keys."""

    def __init__(self, c: MiniLMConfig) -> None:
        super().__init__()
        self.attention = _Attention(c)
        self.intermediate = _Intermediate(c)
        self.output = _AddNorm(c, c.intermediate_size)

    def forward(self, x_BLD: torch.Tensor, mask_B11L: torch.Tensor | None) -> torch.Tensor:
        x_BLD = self.attention.output(self.attention.self(x_BLD, mask_B11L), x_BLD)
        h_BLF = F.gelu(self.intermediate.dense(x_BLD))  # exact (erf) GELU, as BERT's "gelu"
        return self.output(h_BLF, x_BLD)


class _Encoder(nn.Module):
    def __init__(self, c: MiniLMConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))


class MiniLM(nn.Module):
    """BERT encoder with the checkpoint's key names (`embeddings.*`, `encoder.layer.i.*`); the unused
    pooler is not built. `forward` is a pure function: token ids + mask in, hidden states out.
    """

    def __init__(self, config: MiniLMConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = _Embeddings(config)
        self.encoder = _Encoder(config)

    def forward(self, input_ids_BL: torch.Tensor, attention_mask_BL: torch.Tensor) -> torch.Tensor:
        """Token ids (B, L) int64 and mask (B, L) (1 = token, 0 = padding) -> hidden states (B, L, D).

        Padded positions still get (meaningless) hidden states, as in BERT; pool with the mask.
        """
        keep_BL = attention_mask_BL.bool()
        mask_B11L = None if bool(keep_BL.all()) else keep_BL[:, None, None, :]  # padding keys are ignored
        x_BLD = self.embeddings(input_ids_BL)
        for layer in self.encoder.layer:
            x_BLD = layer(x_BLD, mask_B11L)
        return x_BLD


def mean_pool(hidden_BLD: torch.Tensor, attention_mask_BL: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Mean of the hidden states over real tokens (sentence-transformers' Pooling), then L2 norm -> (B, D)."""
    weight_BL1 = attention_mask_BL.to(hidden_BLD.dtype).unsqueeze(-1)
    pooled_BD = (hidden_BLD * weight_BL1).sum(1) / weight_BL1.sum(1).clamp(min=1e-9)
    return F.normalize(pooled_BD, p=2, dim=-1) if normalize else pooled_BD
