"""Forcing-KV's head-aware KV pruning (`ForcingKV`): static heads keep sink + last frame, dynamic heads more.

Forcing-KV (2026) splits attention heads with an offline profile (`genmotion.cache.profile`): a *static*
head keeps only the sink frames and the `recent` last frames; a *dynamic* head keeps those plus the
most-changing segments of older frames. When frames leave the recent window, each is cut into
`segments` (6) contiguous token segments, each segment is scored by the mean cosine similarity of its keys
(all heads of layer `selection_layer`, 0-based as in Forcing-KV's code, before RoPE) to the same segment of
the next frame, and the `keep_ratio` (1/3) lowest-scoring segments of the leaving frames are kept. The
choice is made once, in that layer, and shared by every layer and dynamic head. `window` bounds how many
older frames dynamic heads keep segments from (None: all of them).

Heads of one layer keep different numbers of entries, but a `KVCache` holds the same count per head: the
shorter heads are padded with empty slots whose position is `EMPTY_POSITION`, later than any query, so the
model's "causal" rule (key time <= query time) hides them. Between chunks each layer's buffers hold exactly its
kept entries (a commit grows them by the chunk, eviction shrinks them back). With every head static, the
policy equals `RollingWindow(sink, window=recent)`; with every head dynamic and `keep_ratio=1`, it equals
`SharedClean()`. Axes: B batch, H heads, S slots, N tokens per frame, A frames leaving the recent window,
G segments.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from genmotion.cache.policies import _CleanContextPolicy, _whole_frames
from genmotion.cache.profile import HeadProfile, load_head_profile
from genmotion.errors import UsageError
from genmotion.kv.buffers import KVCache
from genmotion.kv.layered import LayeredKVCache
from genmotion.kv.protocol import FlowModel, FrameLayout
from genmotion.sampling.flow import CLEAN_TIME

__all__ = ["EMPTY_POSITION", "ForcingKV", "segment_ids", "segment_similarity"]

EMPTY_POSITION = 2**24  # exact in float32 RoPE angles, and later than any frame a query can have


def segment_ids(tokens_per_frame: int, segments: int) -> torch.Tensor:
    """(N,) segment index of every token of a frame: `segments` contiguous, near-equal runs."""
    if not 1 <= segments <= tokens_per_frame:
        raise UsageError(
            f"cannot cut frames of {tokens_per_frame} tokens into {segments} segments",
            fix=f"use between 1 and {tokens_per_frame} segments",
        )
    parts = torch.arange(tokens_per_frame).tensor_split(segments)
    return torch.cat([torch.full((len(part),), i) for i, part in enumerate(parts)])


def segment_similarity(frame_BND: torch.Tensor, next_BND: torch.Tensor, seg_ids: torch.Tensor) -> torch.Tensor:
    """(B, G) mean cosine similarity, per segment, of a frame's token features to the next frame's."""
    cos_BN = F.cosine_similarity(frame_BND, next_BND, dim=-1)
    G = int(seg_ids.max()) + 1
    total = cos_BN.new_zeros(cos_BN.shape[0], G).index_add_(1, seg_ids, cos_BN)
    return total / torch.bincount(seg_ids, minlength=G).to(total.dtype)


def _frame_slots(positions_BHS: torch.Tensor, frame: int, tokens: int) -> torch.Tensor:
    """(B, H, N) slots holding `frame`, in token order (every head holds a frame that is still recent)."""
    here = positions_BHS == frame
    assert bool((here.sum(dim=-1) == tokens).all()), "a frame leaving the recent window must be whole in every head"
    return torch.argsort((~here).to(torch.int8), dim=-1, stable=True)[..., :tokens]


class ForcingKV(_CleanContextPolicy):
    """Clean-context KV cache pruned per head by a Forcing-KV profile (a `HeadProfile` or its JSON path).

    `selections` records each segment choice as (first leaving frame, (B, A, G) kept mask).
    """

    def __init__(
        self,
        profile: HeadProfile | str | Path,
        *,
        sink: int = 1,
        recent: int = 1,
        window: int | None = None,
        segments: int = 6,
        keep_ratio: float = 1 / 3,
        selection_layer: int = 1,
    ) -> None:
        super().__init__(sink=sink, window=None)
        if recent < 1 or segments < 1 or not 0.0 <= keep_ratio <= 1.0 or (window is not None and window < 0):
            raise UsageError(
                f"ForcingKV needs recent >= 1, segments >= 1, 0 <= keep_ratio <= 1 and window >= 0, got "
                f"recent={recent} segments={segments} keep_ratio={keep_ratio} window={window}",
                fix="Forcing-KV uses recent=1, segments=6, keep_ratio=1/3",
            )
        self.profile = profile if isinstance(profile, HeadProfile) else load_head_profile(profile)
        self.recent, self.segment_window, self.segments = recent, window, segments
        self.keep_ratio, self.selection_layer = keep_ratio, selection_layer
        self.selections: list[tuple[int, torch.Tensor]] = []
        self._static: list[torch.Tensor] = []  # per layer (H,) bool
        self._seg_ids = torch.zeros(0, dtype=torch.long)

    # ---- setup ---------------------------------------------------------------------------------
    def start(self, model: FlowModel, layout: FrameLayout, *, batch: int, max_frames: int, like: torch.Tensor) -> None:
        self.layout, self._frames, self.selections = layout, 0, []
        self._seg_ids = segment_ids(layout.tokens_per_frame, self.segments).to(like.device)
        self.cache = model.new_cache(batch, layout.chunk_tokens)  # the first commit's room; see `_fit`
        p = self.profile
        if (p.num_layers, p.num_heads) != (len(self.cache), self.cache[0].heads):
            raise UsageError(
                f"head profile is for {p.num_layers} layers x {p.num_heads} heads, the model has "
                f"{len(self.cache)} x {self.cache[0].heads}",
                fix="profile this model with `genmotion profile-heads`",
            )
        self._static = [torch.tensor(row, dtype=torch.bool, device=like.device) for row in p.static]

    # ---- commit and eviction ---------------------------------------------------------------------
    def commit(self, model: FlowModel, clean_BLC: torch.Tensor, *, start_frame: int) -> None:
        """One clean forward writes the frames' K/V (a long prefix too, as `SharedClean`), then heads are pruned."""
        layout = self._layout()
        frames = _whole_frames(layout, clean_BLC)
        self._check_commit(start_frame)
        self.cache = LayeredKVCache([self._fit(layer, layer.length + clean_BLC.shape[1]) for layer in self._state()])
        frame_ids = layout.frame_ids(start_frame, clean_BLC.shape[1], device=clean_BLC.device)
        t_BL = clean_BLC.new_full(clean_BLC.shape[:2], CLEAN_TIME)
        self._call(model, clean_BLC, t_BL, frame_ids, cache=self.cache, mask="causal")
        self._frames += frames
        self._evict(start_frame, self._frames)

    def _evict(self, before: int, total: int) -> None:
        recent_start = max(self.sink, total - self.recent)
        leaving = range(max(self.sink, before - self.recent), recent_start)
        dynamic = any(not bool(s.all()) for s in self._static)
        selected = self._select(leaving) if dynamic and len(leaving) else None
        oldest = -1 if self.segment_window is None else recent_start - self.segment_window
        cache = self._state()
        layers = list(cache)
        for i, layer in enumerate(layers):
            keep = self._keep_mask(layer.positions, self._static[i], leaving, selected, recent_start, oldest)
            layers[i] = self._apply(layer, keep)
        self.cache = LayeredKVCache(layers)

    def _select(self, leaving: range) -> torch.Tensor:
        """(B, A, G) segments of the leaving frames to keep: the lowest similarity to the next frame."""
        cache = self._state()
        layer = cache[min(self.selection_layer, len(cache) - 1)]
        N = self._layout().tokens_per_frame
        keys, pos = layer.keys, layer.positions

        def features(frame: int) -> torch.Tensor:  # (B, N, H * D): every head's key of each token
            slots = _frame_slots(pos, frame, N)
            k = keys.gather(2, slots.unsqueeze(-1).expand(*slots.shape, keys.shape[-1]))
            return k.permute(0, 2, 1, 3).flatten(2)

        scores = torch.stack([segment_similarity(features(f), features(f + 1), self._seg_ids) for f in leaving], 1)
        B, A, G = scores.shape
        count = round(A * G * self.keep_ratio)
        chosen = scores.new_zeros(B, A * G, dtype=torch.bool)
        if count:
            chosen.scatter_(1, scores.reshape(B, A * G).topk(count, dim=-1, largest=False).indices, True)
        chosen = chosen.view(B, A, G)
        self.selections.append((leaving.start, chosen))
        return chosen

    def _keep_mask(
        self,
        pos: torch.Tensor,
        static: torch.Tensor,
        leaving: range,
        selected: torch.Tensor | None,
        recent_start: int,
        oldest: int,
    ) -> torch.Tensor:
        """(B, H, S) slots to keep: sink + recent for every head; older kept segments for dynamic heads."""
        alive = pos < EMPTY_POSITION
        base = alive & ((pos < self.sink) | (pos >= recent_start))
        if bool(static.all()):
            return base
        older = alive & (pos >= max(self.sink, oldest)) & (pos < recent_start)
        dynamic = base | (older & (pos < leaving.start))
        if selected is not None:
            N = self._layout().tokens_per_frame
            for a, frame in enumerate(leaving):
                here = older & (pos == frame)
                token = (here.cumsum(dim=-1) - 1).clamp(0, N - 1)  # token index inside the frame
                chosen = selected[:, a].gather(1, self._seg_ids[token].flatten(1)).view_as(here)
                dynamic |= here & chosen
        return torch.where(static.view(1, -1, 1), base, dynamic)

    def _apply(self, layer: KVCache, keep: torch.Tensor) -> KVCache:
        """Keep the masked slots per head and pad shorter heads with empty slots, in buffers of exactly that size."""
        counts = keep.sum(dim=-1)  # (B, H)
        K = int(counts.max())
        index = torch.argsort((~keep).to(torch.int8), dim=-1, stable=True)[..., :K]  # kept first, in order
        layer.keep(index)
        empty = torch.arange(K, device=index.device) >= counts.unsqueeze(-1)
        layer.pos[:, :, :K][empty] = EMPTY_POSITION
        layer.changed()
        return self._resized(layer, K)

    def _fit(self, layer: KVCache, needed: int) -> KVCache:
        """`layer`, or a copy in buffers of `needed` slots when they do not fit (a commit's new frames)."""
        return layer if needed <= layer.capacity else self._resized(layer, needed)

    @staticmethod
    def _resized(layer: KVCache, capacity: int) -> KVCache:
        """The entries of `layer` in buffers of exactly `capacity` slots. Between chunks a layer holds only what
        its heads keep (denoising steps read it plus the chunk without writing, as `SharedClean` once full);
        the copy per chunk and layer costs far less than the chunk's denoising steps."""
        if capacity == layer.capacity:
            return layer
        resized = KVCache(
            layer.batch, layer.heads, capacity, layer.head_dim, dtype=layer.k.dtype, device=layer.k.device
        )
        resized.append(layer.keys, layer.values, layer.positions)
        return resized
