"""VideoAR's transformer (next-frame x next-scale prediction, text-conditioned) and the `VideoAR` bundle
(tokenizer + transformer) that a `videoar` checkpoint holds. Follows VideoAR (2025) on VAR's backbone.

Pure functions of their inputs: no sampling, no RNG, no I/O. `forward` is the masked training pass over
whole clips; `step` runs new tokens against a `VideoARCache` (built by the sampler) for inference.
Axes: B batch, T frames, L tokens, S keys, W width, E text width, Cv latent channels, V vocabulary,
H heads, D head dim. Positions are float (t, y, x) (multi-scale temporal RoPE, `layout.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from genmotion.errors import UsageError
from genmotion.kv.layered import LayeredKVCache
from genmotion.nn.attention import attend
from genmotion.nn.blocks import MLP
from genmotion.nn.rope import Rotary, rotate
from genmotion.video.config import VideoTokenizerConfig
from genmotion.video.text import TextConditioned
from genmotion.video.tokenizer import VideoTokenizer
from genmotion.video.videoar.config import VideoARConfig, VideoARTransformerConfig
from genmotion.video.videoar.layout import ClipAttention, ScaleLayout
from genmotion.video.videoar.layout_prior import LayoutPrior

__all__ = ["Condition", "Modulation", "VideoAR", "VideoARCache", "VideoARTransformer"]


@dataclass
class VideoARCache:
    """Inference state: `frames` holds the clean tokens of the sink + window frames (a ring, keys before
    RoPE with their positions); `scales` holds the current frame's scale tokens (reset every frame)."""

    frames: LayeredKVCache
    scales: LayeredKVCache

    def nbytes(self) -> int:
        """Bytes allocated (static: the same from the first frame on)."""
        return self.frames.nbytes() + self.scales.nbytes()

    def valid_nbytes(self) -> int:
        """Bytes of the entries held: grows until the window is full, then stays flat."""
        return self.frames.valid_nbytes() + self.scales.valid_nbytes()


@dataclass(frozen=True)
class RopeAngles:
    """cos/sin of the RoPE angles of queries (..., L, D/2) and keys (..., S, D/2), computed once per forward
    and shared by every layer (positions do not change between layers); `q_pos` (L, 3) for cache writes."""

    q_pos: torch.Tensor
    q_cos: torch.Tensor
    q_sin: torch.Tensor
    k_cos: torch.Tensor
    k_sin: torch.Tensor

    @classmethod
    def of(cls, rotary: Rotary, q_pos: torch.Tensor, k_pos: torch.Tensor, dtype: torch.dtype) -> RopeAngles:
        q, k = rotary.angles(q_pos), rotary.angles(k_pos)
        return cls(q_pos, q.cos().to(dtype), q.sin().to(dtype), k.cos().to(dtype), k.sin().to(dtype))


class FrameAttention(nn.Module):
    """Self-attention with 3-axis RoPE applied at call time; keys can come from a `VideoARCache`."""

    def __init__(self, cfg: VideoARTransformerConfig) -> None:
        super().__init__()
        self.heads, self.head_dim = cfg.heads, cfg.head_dim
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.width)

    def forward(
        self,
        x_BLW: torch.Tensor,
        rope: RopeAngles,
        clip: ClipAttention | None = None,
        cache: tuple[LayeredKVCache, LayeredKVCache, int] | None = None,
        clean: bool = False,
    ) -> torch.Tensor:
        """x (B, L, W) -> (B, L, W). Training: `clip` says which keys each frame reads. Inference: `cache` =
        (frames, scales, layer); keys are the cached frames followed by this frame's scale tokens and the new
        ones (clean=False) or by the new clean tokens (clean=True); `rope` holds the angles of those keys."""
        B, L, W = x_BLW.shape
        q, k, v = self.qkv(x_BLW).view(B, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (B, H, L, D)
        if clip is not None:
            return self.proj(self._clip_attention(q, k, v, rope, clip))
        if cache is not None:
            frames, scales, i = cache
            if clean:
                k, v, _ = frames[i].extend(k, v, rope.q_pos)  # appends the finished frame
            else:
                k_s, v_s, _ = scales[i].extend(k, v, rope.q_pos)
                k, v = torch.cat([frames[i].keys, k_s], 2), torch.cat([frames[i].values, v_s], 2)
        q, k = rotate(q, rope.q_cos, rope.q_sin), rotate(k, rope.k_cos, rope.k_sin)
        out = attend(q, k, v)  # every cached key is visible: the cache holds exactly the allowed frames
        return self.proj(out.transpose(1, 2).reshape(B, L, W))

    def write_kv(self, x_BLW: torch.Tensor, rope: RopeAngles, frames: LayeredKVCache, i: int) -> None:
        B, L, W = x_BLW.shape
        _, k, v = self.qkv(x_BLW).view(B, L, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        frames[i].append(k, v, rope.q_pos)

    def _clip_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rope: RopeAngles, clip: ClipAttention
    ) -> torch.Tensor:
        """Per-frame gathered attention: (B, H, L, D) x 3 -> (B, L, W)."""
        B, H, L, D = q.shape
        T, S = clip.index.shape
        N = L // T
        q, k = rotate(q, rope.q_cos, rope.q_sin), rotate(k, rope.k_cos, rope.k_sin)
        k_g = k[:, :, clip.index].transpose(1, 2).reshape(B * T, H, S, D)  # (B*T, H, S, D)
        v_g = v[:, :, clip.index].transpose(1, 2).reshape(B * T, H, S, D)
        q_f = q.view(B, H, T, N, D).transpose(1, 2).reshape(B * T, H, N, D)
        mask = clip.mask.expand(B, T, N, S).reshape(B * T, 1, N, S)
        out = attend(q_f, k_g, v_g, mask=mask)  # (B*T, H, N, D)
        return out.view(B, T, H, N, D).permute(0, 1, 3, 2, 4).reshape(B, L, H * D)


@dataclass(frozen=True)
class Modulation:
    """A frame condition turned into every block's AdaLN vectors and the head's, once per frame."""

    blocks: tuple[tuple[torch.Tensor, ...], ...]
    head: tuple[torch.Tensor, torch.Tensor]


Condition = torch.Tensor | Modulation
"""A condition (B, W) from `VideoARTransformer.condition`, or its precomputed `Modulation`."""


class VideoARBlock(nn.Module):
    """AdaLN block (VAR): the frame condition sets shift/scale/gate of attention and MLP."""

    def __init__(self, cfg: VideoARTransformerConfig) -> None:
        super().__init__()
        W = cfg.width
        self.norm1 = nn.LayerNorm(W, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(W, elementwise_affine=False, eps=1e-6)
        self.attn = FrameAttention(cfg)
        self.mlp = MLP(W, int(W * cfg.mlp_ratio))
        ada = nn.Linear(W, 6 * W)
        with torch.no_grad():  # zero modulation: each block starts as a plain pre-norm block
            ada.weight.zero_()
            ada.bias.zero_()
        self.ada_lin = nn.Sequential(nn.SiLU(), ada)

    def modulation(self, cond_BW: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(shift, scale, gate) for attention and for the MLP, each (B, 1, W)."""
        return tuple(self.ada_lin(cond_BW).unsqueeze(1).chunk(6, dim=-1))

    def forward(self, x_BLW: torch.Tensor, mod: tuple[torch.Tensor, ...], rope: RopeAngles, **kw: Any) -> torch.Tensor:
        """x (B, L, W) with this block's `modulation` -> (B, L, W); `kw` is the attention's clip= or cache=/clean=."""
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = mod
        h = self.attn(self.norm1(x_BLW) * (1 + scale_a) + shift_a, rope, **kw)
        x_BLW = x_BLW + (1 + gate_a) * h
        return x_BLW + (1 + gate_m) * self.mlp(self.norm2(x_BLW) * (1 + scale_m) + shift_m)

    def write_kv(
        self, x_BLW: torch.Tensor, mod: tuple[torch.Tensor, ...], rope: RopeAngles, frames: LayeredKVCache, i: int
    ) -> None:
        """Only append this block's keys/values of x to the frame cache (the last block of a clean commit:
        its output is never read)."""
        self.attn.write_kv(self.norm1(x_BLW) * (1 + mod[1]) + mod[0], rope, frames, i)


class VideoARTransformer(TextConditioned):
    """Text-conditioned next-frame x next-scale transformer over a tokenizer's latents and vocabulary."""

    def __init__(self, cfg: VideoARTransformerConfig, tokenizer: VideoTokenizerConfig) -> None:
        super().__init__()
        self.config, self.layout = cfg, ScaleLayout(tokenizer.patch_nums)
        W, Cv, V = cfg.width, tokenizer.latent_channels, tokenizer.vocab_size
        self._init_text_condition(cfg.text_dim, W)  # standardised prompt -> (B, W), and the null row of CFG
        self.start = nn.Parameter(torch.randn(W) * 0.02)
        self.word_embed = nn.Linear(Cv, W)  # next-scale inputs (downsampled f_hat)
        self.clean_embed = nn.Linear(Cv, W)  # finished frames' f_hat, the cross-frame context
        # the previous frame's code at each token's place (row V: no previous frame): copying is one lookup away
        self.prev_embed = nn.Embedding(V + 1, W)
        nn.init.normal_(self.prev_embed.weight, std=0.3)
        self.level_embed = nn.Embedding(self.layout.num_scales + 1, W)
        nn.init.normal_(self.level_embed.weight, std=0.02)  # N(0, 1) would drown the content embeddings
        self.pos_embed = nn.Parameter(torch.randn(self.layout.tokens_per_frame, W) * 0.02)
        self.rotary = Rotary(cfg.head_dim, cfg.rope_axes, base=cfg.rope_base)
        self.blocks = nn.ModuleList(VideoARBlock(cfg) for _ in range(cfg.depth))
        self.head_norm = nn.LayerNorm(W, elementwise_affine=False, eps=1e-6)
        self.head_ada = nn.Sequential(nn.SiLU(), nn.Linear(W, 2 * W))
        self.head = nn.Linear(W, V)

    # ---- embeddings ----------------------------------------------------------------------------
    def _place(self, x: torch.Tensor, tokens: slice) -> torch.Tensor:
        return x + self.level_embed(self.layout.levels[tokens].to(x.device)) + self.pos_embed[tokens]

    @property
    def no_previous(self) -> int:
        """The `prev_embed` row meaning "no previous frame" (frame 0, or a masked previous frame)."""
        return self.prev_embed.num_embeddings - 1

    def previous_tokens(self, tokens: list[torch.Tensor] | None, batch: int, device: torch.device) -> torch.Tensor:
        """The previous frame's per-scale codes [(B, p^2), ...] as one row per scale token (B, N_s) long."""
        if tokens is None:
            return torch.full((batch, self.layout.scale_tokens), self.no_previous, dtype=torch.long, device=device)
        return torch.cat(tokens, dim=1)

    def embed_scales(
        self, cond_BW: torch.Tensor, inputs_BlC: torch.Tensor, prev_Bl: torch.Tensor, first_scale: int = 0
    ) -> torch.Tensor:
        """Scale tokens from `first_scale` on: the start token (from the condition) when first_scale == 0,
        then `word_embed` of the next-scale inputs (B, l, Cv) -> (B, l', W) (batch axes may include T);
        `prev_Bl` (B, l') long are the previous frame's codes at the same tokens (`previous_tokens`)."""
        parts = []
        if first_scale == 0:
            lead = inputs_BlC.shape[:-2]
            parts.append(
                (cond_BW.view(cond_BW.shape[0], *[1] * (len(lead) - 1), -1) + self.start)
                .expand(*lead, -1)
                .unsqueeze(-2)
            )
        if inputs_BlC.shape[-2]:
            parts.append(self.word_embed(inputs_BlC))
        x = torch.cat(parts, dim=-2) + self.prev_embed(prev_Bl)
        begin = self.layout.scale_slice(first_scale).start
        return self._place(x, slice(begin, begin + x.shape[-2]))

    def embed_clean(self, fhat_BlC: torch.Tensor) -> torch.Tensor:
        """Finished frames' latents (..., P^2, Cv) -> clean tokens (..., P^2, W)."""
        N_s = self.layout.scale_tokens
        return self._place(self.clean_embed(fhat_BlC), slice(N_s, N_s + self.layout.clean_tokens))

    def modulation(self, cond: Condition) -> Modulation:
        """The AdaLN vectors of every block and of the head for condition (B, W) (computed once per frame)."""
        if isinstance(cond, Modulation):
            return cond
        shift, scale = self.head_ada(cond).unsqueeze(1).chunk(2, dim=-1)
        blocks: list[VideoARBlock] = list(self.blocks)  # type: ignore[arg-type]
        return Modulation(tuple(b.modulation(cond) for b in blocks), (shift, scale))

    def logits(self, h_BLW: torch.Tensor, cond: Condition) -> torch.Tensor:
        """Hidden states of scale tokens -> logits (B, L, V)."""
        shift, scale = self.modulation(cond).head
        return self.head(self.head_norm(h_BLW) * (1 + scale) + shift)

    # ---- the two passes ------------------------------------------------------------------------
    def forward(self, x_BLW: torch.Tensor, cond: Condition, pos_L3: torch.Tensor, clip: ClipAttention) -> torch.Tensor:
        """Training pass over whole clips: tokens (B, T * N, W) attending as `clip` says -> (B, T * N, W)."""
        rope = RopeAngles.of(self.rotary, pos_L3, pos_L3, x_BLW.dtype)
        for block, mod in zip(self.blocks, self.modulation(cond).blocks, strict=True):
            x_BLW = block(x_BLW, mod, rope, clip=clip)
        return x_BLW

    def step(
        self, x_BLW: torch.Tensor, cond: Condition, pos_L3: torch.Tensor, cache: VideoARCache, *, clean: bool
    ) -> torch.Tensor | None:
        """New tokens of one frame against the cache. Scale tokens accumulate in `cache.scales` and give their
        hidden states (B, L, W); clean tokens (clean=True) are appended to `cache.frames` and give None (the
        last block only writes its keys/values: nothing reads its output)."""
        mods = self.modulation(cond).blocks
        rope = RopeAngles.of(self.rotary, pos_L3, self._key_positions(pos_L3, cache, clean), x_BLW.dtype)
        last = len(self.blocks) - 1
        blocks: list[VideoARBlock] = list(self.blocks)  # type: ignore[arg-type]
        for i, (block, mod) in enumerate(zip(blocks, mods, strict=True)):
            if clean and i == last:
                block.write_kv(x_BLW, mod, rope, cache.frames, i)
                return None
            x_BLW = block(x_BLW, mod, rope, cache=(cache.frames, cache.scales, i), clean=clean)
        return x_BLW

    def _key_positions(self, pos_L3: torch.Tensor, cache: VideoARCache, clean: bool) -> torch.Tensor:
        """(S, 3) positions of the keys a step reads (every layer holds the same ones): cached frames, then this
        frame's earlier scales (unless clean), then the new tokens. Sink frames further back than training
        ever showed are moved up to `max_sink_distance` (StreamingLLM), so long videos stay in range."""
        parts = [cache.frames[0].positions[0, 0]]
        if not clean:
            parts.append(cache.scales[0].positions[0, 0])
        pos = torch.cat([*parts, pos_L3.to(parts[0].dtype)])
        c, now = self.config, float(pos_L3[:, 0].max())
        t = pos[:, 0]
        moved = torch.where(t < c.sink_frames, t.clamp(min=now - c.max_sink_distance), t)
        return torch.cat([moved[:, None], pos[:, 1:]], dim=1)

    def new_cache(
        self,
        batch: int,
        capacity: int | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> VideoARCache:
        """Static buffers: sink + window frames of clean tokens (a ring) and one frame of scale tokens. The shared
        `new_cache` signature; `capacity`, if given, must be the ring's size (it is fixed by the architecture)."""
        c, n = self.config, self.layout.clean_tokens
        if capacity is not None and capacity != (c.sink_frames + c.window_frames) * n:
            raise UsageError(
                f"VideoAR's frame cache holds {(c.sink_frames + c.window_frames) * n} tokens, not {capacity}"
            )
        kw = {"dtype": dtype, "device": device, "position_axes": 3, "position_dtype": torch.float32}
        frames = LayeredKVCache.allocate(
            c.depth,
            batch,
            c.heads,
            (c.sink_frames + c.window_frames) * n,
            c.head_dim,
            ring=True,
            sink=c.sink_frames * n,
            **kw,
        )
        scales = LayeredKVCache.allocate(c.depth, batch, c.heads, self.layout.scale_tokens, c.head_dim, **kw)
        return VideoARCache(frames=frames, scales=scales)


class VideoAR(nn.Module):
    """Tokenizer + transformer: everything a `videoar` checkpoint directory holds (one safetensors file)."""

    def __init__(self, config: VideoARConfig) -> None:
        super().__init__()
        if config.transformer.text_dim <= 0:
            raise ValueError("transformer.text_dim must be positive")
        if config.keyframe is not None and config.keyframe.text_dim != config.transformer.text_dim:
            raise ValueError("keyframe.text_dim must equal transformer.text_dim (both read the same prompt embedding)")
        if config.layout_prior is not None and config.layout_prior.text_dim != config.transformer.text_dim:
            raise ValueError("layout_prior.text_dim must equal transformer.text_dim (both read the same prompt)")
        self.config = config
        self.tokenizer = VideoTokenizer(config.tokenizer)
        self.transformer = VideoARTransformer(config.transformer, config.tokenizer)
        #: draws frame 0 (text -> first frame) when the checkpoint has one; `transformer` draws the rest
        self.keyframe = None if config.keyframe is None else VideoARTransformer(config.keyframe, config.tokenizer)
        #: draws frame 0's coarsest scales token by token (the frame's transformer then draws the rest)
        self.layout_prior = None
        if config.layout_prior is not None:
            tok = config.tokenizer
            self.layout_prior = LayoutPrior(config.layout_prior, tok.vocab_size, tuple(tok.patch_nums))
