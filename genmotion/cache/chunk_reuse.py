"""FlowCache's chunk-wise step skipping (`ChunkReuse`): reuse a chunk's last velocity while its input barely moves.

FlowCache (Ma et al., 2026) keeps an independent reuse decision per chunk. For each model evaluation of the
chunk being denoised, the relative L1 change of its input embedding since the previous evaluation,
mean|e_k - e_(k-1)| / mean|e_(k-1)|, is added to an accumulator. The evaluation is skipped, and the chunk's
last computed update (the velocity) re-applied, when all of these hold:
* it is neither the chunk's first nor its last evaluation,
* at least `warmup` evaluations of this chunk were computed,
* the accumulated change stays below `thresh`.
Every computed evaluation resets the accumulator. The K/V side is delegated to a context policy
(`SharedClean` by default, or `RollingWindow`, `ImportanceRedundancy`, `HeadAware`), so the two compose.

`order=1` (not in FlowCache) forecasts a skipped evaluation instead of reusing it: the velocity is extended
linearly in t from the chunk's last two computed velocities, v1 + (v1 - v0) (t - t1) / (t1 - t0), the
first-order forecast of TaylorSeer (Liu et al., 2025). The skip rule is unchanged; on ca2vdm-toy, at the
same share of skipped forwards, the output stays much closer to the exact one (see the cache benchmark).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from genmotion.cache.policies import SharedClean
from genmotion.cache.policy import CachePolicy, FlowModel, FrameLayout, PolicyStats
from genmotion.cache.state import FeatureCache
from genmotion.errors import UsageError

__all__ = ["ChunkReuse", "relative_l1"]

Embed = Callable[[torch.Tensor], torch.Tensor]


def relative_l1(current: torch.Tensor, previous: torch.Tensor, eps: float = 1e-8) -> float:
    """mean|current - previous| / (mean|previous| + eps), FlowCache's change measure."""
    return float((current - previous).abs().mean() / (previous.abs().mean() + eps))


class ChunkReuse:
    """Skip a chunk's forward while its accumulated input change stays under `thresh` (FlowCache).

    `thresh=0` never skips, which makes the policy equal to its `context` policy exactly. `embed` maps the
    chunk's (B, L, C) input latents to the features the rule compares; the default compares the latents
    themselves (the same relative change as any bias-free linear patch embedding that preserves norms).
    `trace` holds, per denoised chunk in order, which evaluations ran the model (True) or were reused.
    `order` 0 re-applies the last computed velocity (FlowCache); 1 forecasts it linearly in t from the last
    two (falls back to reuse while the chunk has only one).
    """

    def __init__(
        self,
        thresh: float = 0.01,
        warmup: int = 5,
        *,
        order: int = 0,
        context: CachePolicy | None = None,
        embed: Embed | None = None,
    ) -> None:
        if thresh < 0 or warmup < 0:
            raise UsageError(
                f"ChunkReuse needs thresh >= 0 and warmup >= 0, got thresh={thresh} warmup={warmup}",
                fix="FlowCache uses thresh 0.01-0.015 and warmup 5",
            )
        if order not in (0, 1):
            raise UsageError(
                f"ChunkReuse order must be 0 or 1, got {order}",
                fix="0 reuses the last velocity (FlowCache), 1 forecasts it linearly from the last two",
            )
        self.thresh, self.warmup, self.order, self.embed = float(thresh), int(warmup), int(order), embed
        self.context: CachePolicy = SharedClean() if context is None else context
        self.stats: PolicyStats = self.context.stats  # one set of counters for the composed policy
        # (0, "input") last input features; (0, "velocity"), (0, "velocity_before") the last two computed
        # updates, computed at times self._times[-1], self._times[-2]
        self.features = FeatureCache()
        self._times: list[float] = []
        self.trace: list[list[bool]] = []
        self._evaluations: int | None = None
        self._accumulated = 0.0

    @property
    def forwards_skipped(self) -> int:
        return self.stats.forwards_skipped

    def start(self, model: FlowModel, layout: FrameLayout, *, batch: int, max_frames: int, like: torch.Tensor) -> None:
        self.context.start(model, layout, batch=batch, max_frames=max_frames, like=like)
        self.features.clear()
        self.trace, self._evaluations, self._accumulated = [], None, 0.0

    def begin_chunk(self, start_frame: int, num_evaluations: int) -> None:
        self.context.begin_chunk(start_frame, num_evaluations)
        self.features.clear()
        self._times = []
        self.trace.append([])
        self._evaluations, self._accumulated = num_evaluations, 0.0

    def _must_compute(self, step: int, computed: int) -> bool:
        assert self._evaluations is not None
        first_or_last = step == 0 or step >= self._evaluations - 1
        return first_or_last or computed < self.warmup or (0, "velocity") not in self.features

    def velocity(self, model: FlowModel, x_BLC: torch.Tensor, t: float, *, start_frame: int) -> torch.Tensor:
        if self._evaluations is None:
            raise UsageError(
                "ChunkReuse.velocity was called outside a chunk",
                fix="call begin_chunk(start_frame, num_evaluations) first (flow_stream does)",
            )
        trace = self.trace[-1]
        step, computed = len(trace), sum(trace)
        features = x_BLC if self.embed is None else self.embed(x_BLC)
        previous = self.features.get(0, "input")
        self.features.put(0, "input", features.detach().clone())
        if not self._must_compute(step, computed) and previous is not None:
            self._accumulated += relative_l1(features, previous)
            if self._accumulated < self.thresh:
                trace.append(False)
                self.stats.forwards_skipped += 1
                return self._forecast(t)
        self._accumulated = 0.0
        v = self.context.velocity(model, x_BLC, t, start_frame=start_frame)
        last = self.features.get(0, "velocity")
        if self.order > 0 and last is not None:
            self.features.put(0, "velocity_before", last)
        self.features.put(0, "velocity", v)
        self._times = [*self._times[-1:], float(t)]
        trace.append(True)
        return v

    def _forecast(self, t: float) -> torch.Tensor:
        """The update of a skipped evaluation at time t: the last computed one, or (order 1) the line
        through the last two computed ones evaluated at t."""
        v1 = self.features.get(0, "velocity")
        v0 = self.features.get(0, "velocity_before")
        assert v1 is not None
        if self.order == 0 or v0 is None or self._times[1] == self._times[0]:  # v0 stored: two times known
            return v1
        t0, t1 = self._times
        return torch.lerp(v0, v1, (t - t0) / (t1 - t0))

    def commit(self, model: FlowModel, clean_BLC: torch.Tensor, *, start_frame: int) -> None:
        self.context.commit(model, clean_BLC, start_frame=start_frame)

    def bytes_held(self) -> int:
        """The context policy's bytes plus the stored features and velocity of the current chunk."""
        return self.context.bytes_held() + self.features.nbytes()
