"""FlowCache's chunk-wise step skipping (`FlowCache`): reuse a chunk's last velocity while its input barely moves.

FlowCache (Ma et al., 2026) keeps an independent reuse decision per chunk. For each model evaluation of the
chunk being denoised, the relative L1 change of its input embedding since the previous evaluation,
mean|e_k - e_(k-1)| / mean|e_(k-1)|, is added to an accumulator. The evaluation is skipped, and the chunk's
last computed update (the velocity) re-applied, when all of these hold:
* it is neither the chunk's first nor its last evaluation,
* at least `warmup` evaluations of this chunk were computed,
* the accumulated change stays below `thresh`.
Every computed evaluation resets the accumulator. The K/V side is delegated to a context policy
(`SharedClean` by default, or `RollingWindow`, `FlowCacheKV`, `ForcingKV`), so the two compose.

Two additions, not in FlowCache:
* `order` 1 or 2 forecasts a skipped evaluation instead of reusing it: the polynomial in t through the chunk's
  last `order` + 1 computed velocities, evaluated at t (order 1: the line through the last two, TaylorSeer's
  first-order forecast, Liu et al., 2025). Order 0 re-applies the last velocity, FlowCache exactly.
* `rule="error"` replaces the input-change rule by an estimate of the forecast's own error: the next term of
  the interpolating polynomial, f[t_0..t_(order+1)] (t - t_0)...(t - t_order), from the divided difference of
  the last `order` + 2 computed velocities (the local error estimate of Adams-type extrapolation), as a
  relative L1 against the last velocity; the evaluation is skipped while that stays below `thresh` (the
  first / last / warmup conditions still hold). It needs `order` + 2 computed velocities of the chunk before
  any skip. On ca2vdm-toy at 24 steps it skips more than the input rule at the same fidelity (see the cache
  benchmark): the input barely moves at the noisy end, where the velocity changes fastest.
* `correct=True` (Euler only) repairs the state error of a run of skipped steps once the evaluation after it
  is computed: the skipped steps' velocities are re-estimated by the chord, the line in t between the last
  computed velocity v_j before the run (at t_j) and the one just computed, v_m (at t_m), and the error the
  skipped steps made, err = sum_k dt_k (chord(t_k) - u_k) over the skipped steps k (u_k the velocity used
  there, dt_k their step), is added to the state through the velocity returned at step m: v_m + err / dt_m.
  The Euler state after step m is then the one the chord's velocities would have given, exact when the
  velocity is linear in t along the run. It needs the chunk's time grid (`begin_chunk(..., times=...)`, which
  `flow_stream` passes); under another solver (more evaluations than steps) it is a UsageError, since the
  update of a skipped Heun stage does not enter the state as dt_k u_k.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from genmotion.cache.policies import SharedClean
from genmotion.errors import UsageError
from genmotion.kv.layered import FeatureCache
from genmotion.kv.protocol import CachePolicy, FlowModel, FrameLayout, PolicyStats

__all__ = ["RULES", "FlowCache", "divided_difference_weights", "lagrange_weights", "relative_l1"]

RULES = ("input", "error")

Embed = Callable[[torch.Tensor], torch.Tensor]


def lagrange_weights(nodes: list[float], t: float) -> list[float]:
    """Weights w_j with sum_j w_j f(nodes[j]) = p(t), p the polynomial of degree len(nodes) - 1 through the
    nodes (distinct): exact for any f of that degree."""
    weights = []
    for j, tj in enumerate(nodes):
        w = 1.0
        for m, tm in enumerate(nodes):
            if m != j:
                w *= (t - tm) / (tj - tm)
        weights.append(w)
    return weights


def divided_difference_weights(nodes: list[float]) -> list[float]:
    """Weights c_j with sum_j c_j f(nodes[j]) = f[nodes], the divided difference of order len(nodes) - 1
    (distinct nodes): c_j = 1 / prod_(i != j) (t_j - t_i)."""
    weights = []
    for j, tj in enumerate(nodes):
        w = 1.0
        for i, ti in enumerate(nodes):
            if i != j:
                w /= tj - ti
        weights.append(w)
    return weights


def relative_l1(current: torch.Tensor, previous: torch.Tensor, eps: float = 1e-8) -> float:
    """mean|current - previous| / (mean|previous| + eps), FlowCache's change measure."""
    return float((current - previous).abs().mean() / (previous.abs().mean() + eps))


class FlowCache:
    """Skip a chunk's forward while its accumulated input change (`rule="input"`, FlowCache) or the forecast's
    estimated error (`rule="error"`) stays under `thresh`.

    `thresh=0` never skips, which makes the policy equal to its `context` policy exactly. `embed` maps the
    chunk's (B, L, C) input latents to the features the input rule compares; the default compares the latents
    themselves (the same relative change as any bias-free linear patch embedding that preserves norms).
    `trace` holds, per denoised chunk in order, which evaluations ran the model (True) or were reused.
    `order` 0 re-applies the last computed velocity (FlowCache); 1 and 2 forecast it with the polynomial in t
    through the last two or three (of lower degree while the chunk has fewer). `correct=True` adds the chord
    correction of skipped Euler steps (see the module doc).
    """

    def __init__(
        self,
        thresh: float = 0.01,
        warmup: int = 5,
        *,
        order: int = 0,
        rule: str = "input",
        correct: bool = False,
        context: CachePolicy | None = None,
        embed: Embed | None = None,
    ) -> None:
        if thresh < 0 or warmup < 0:
            raise UsageError(
                f"FlowCache needs thresh >= 0 and warmup >= 0, got thresh={thresh} warmup={warmup}",
                fix="FlowCache uses thresh 0.01-0.015 and warmup 5",
            )
        if order not in (0, 1, 2):
            raise UsageError(
                f"FlowCache order must be 0, 1 or 2, got {order}",
                fix="0 reuses the last velocity (FlowCache); 1 and 2 forecast it from the last two or three",
            )
        if rule not in RULES:
            raise UsageError(
                f"FlowCache rule must be one of {', '.join(RULES)}, got {rule!r}",
                fix="'input' is FlowCache's accumulated input change; 'error' the forecast's estimated error",
            )
        self.thresh, self.warmup, self.order, self.embed = float(thresh), int(warmup), int(order), embed
        self.rule, self.correct = rule, bool(correct)
        self._keep = self.order + 1 + (rule == "error")  # computed velocities the forecast and the rule read
        self.context: CachePolicy = SharedClean() if context is None else context
        self.stats: PolicyStats = self.context.stats  # one set of counters for the composed policy
        # (0, "input") the last input features (input rule); `_history` the chunk's last `_keep` computed
        # updates at distinct times, newest first, as (t, velocity (B, L, C))
        self.features = FeatureCache()
        self._history: list[tuple[float, torch.Tensor]] = []
        self.trace: list[list[bool]] = []
        self._evaluations: int | None = None
        self._accumulated, self._error_scale = 0.0, math.inf
        # correct=True: the chunk's Euler steps dt_k, and the skipped steps since the last computed evaluation as
        # (t_k, dt_k, velocity used (B, L, C))
        self._steps: list[float] = []
        self._skipped: list[tuple[float, float, torch.Tensor]] = []

    @property
    def forwards_skipped(self) -> int:
        return self.stats.forwards_skipped

    def start(self, model: FlowModel, layout: FrameLayout, *, batch: int, max_frames: int, like: torch.Tensor) -> None:
        self.context.start(model, layout, batch=batch, max_frames=max_frames, like=like)
        self.features.clear()
        self.trace, self._evaluations, self._accumulated = [], None, 0.0

    def begin_chunk(self, start_frame: int, num_evaluations: int, times: Sequence[float] | None = None) -> None:
        self.context.begin_chunk(start_frame, num_evaluations, times=times)
        self.features.clear()
        self._history, self._skipped, self._error_scale = [], [], math.inf
        self.trace.append([])
        self._evaluations, self._accumulated = num_evaluations, 0.0
        if self.correct:
            self._steps = _euler_steps(num_evaluations, times)

    def _must_compute(self, step: int, computed: int) -> bool:
        assert self._evaluations is not None
        first_or_last = step == 0 or step >= self._evaluations - 1
        return first_or_last or computed < self.warmup or not self._history

    def velocity(self, model: FlowModel, x_BLC: torch.Tensor, t: float, *, start_frame: int) -> torch.Tensor:
        if self._evaluations is None:
            raise UsageError(
                "FlowCache.velocity was called outside a chunk",
                fix="call begin_chunk(start_frame, num_evaluations) first (flow_stream does)",
            )
        trace, step = self.trace[-1], len(self.trace[-1])
        if self._may_skip(x_BLC, t, forced=self._must_compute(step, sum(trace))):
            trace.append(False)
            self.stats.forwards_skipped += 1
            used = self._forecast(t)
            if self.correct:
                self._skipped.append((float(t), self._steps[step], used))
            return used
        self._accumulated = 0.0
        v = self.context.velocity(model, x_BLC, t, start_frame=start_frame)
        returned = self._corrected(v, float(t), step) if self._skipped else v
        older = [(s, u) for s, u in self._history if s != float(t)]  # a time evaluated again (Heun): the newest
        self._history = [(float(t), v), *older[: self._keep - 1]]
        self._error_scale = self._divided_difference_scale() if self.rule == "error" else math.inf
        trace.append(True)
        return returned

    def _corrected(self, v_BLC: torch.Tensor, t: float, step: int) -> torch.Tensor:
        """v_m + err / dt_m: the velocity computed at step m (time t) carrying the state error of the skipped
        steps just before it, err = sum_k dt_k (chord(t_k) - u_k), the chord the line in t from the last
        computed velocity before them (the history's newest, not yet updated) to v_m. Written as one weighted
        sum over the distinct tensors (a reused u_k is v_j itself)."""
        t_j, v_j = self._history[0]
        dt_m = self._steps[step]
        terms: dict[int, tuple[torch.Tensor, float]] = {id(v_BLC): (v_BLC, 1.0), id(v_j): (v_j, 0.0)}

        def add(u: torch.Tensor, w: float) -> None:
            terms[id(u)] = (u, terms.get(id(u), (u, 0.0))[1] + w)

        for t_k, dt_k, used in self._skipped:
            s = (t_k - t_j) / (t - t_j)
            add(v_j, dt_k * (1.0 - s) / dt_m)
            add(v_BLC, dt_k * s / dt_m)
            add(used, -dt_k / dt_m)
        self._skipped = []
        tensors, weights = zip(*terms.values(), strict=True)
        return _combine([(0.0, u) for u in tensors], list(weights))

    def _may_skip(self, x_BLC: torch.Tensor, t: float, *, forced: bool) -> bool:
        """The skip rule (False when the evaluation is `forced`): FlowCache's accumulated input change (which
        records every evaluation's input), or the forecast's estimated error (needs `order` + 2 velocities)."""
        if self.rule == "error":
            return not forced and self._forecast_error(t) < self.thresh
        features = x_BLC if self.embed is None else self.embed(x_BLC)
        previous = self.features.get(0, "input")
        self.features.put(0, "input", features.detach().clone())
        if forced or previous is None:
            return False
        self._accumulated += relative_l1(features, previous)
        return self._accumulated < self.thresh

    def _forecast_error(self, t: float) -> float:
        """mean|f[t_0..t_(order+1)] prod_(j <= order) (t - t_j)| / mean|v_0| over the stored velocities (newest
        first), or inf while fewer than `order` + 2 are stored. The product is a number, so this is |product| times
        `_error_scale`, the divided difference's relative mean, made once per computed evaluation."""
        if len(self._history) < self._keep:
            return math.inf
        return abs(math.prod(t - tj for tj, _ in self._history[:-1])) * self._error_scale

    def _divided_difference_scale(self) -> float:
        """mean|f[t_0..t_(order+1)]| / mean|v_0| of the stored velocities (inf while fewer than `order` + 2)."""
        if len(self._history) < self._keep:
            return math.inf
        weights = divided_difference_weights([s for s, _ in self._history])
        estimate = _combine(self._history, weights)
        return float(estimate.abs().mean() / (self._history[0][1].abs().mean() + 1e-8))

    def _forecast(self, t: float) -> torch.Tensor:
        """The update of a skipped evaluation at time t: the last computed one (order 0), or the polynomial in t
        through the chunk's last `order` + 1 computed ones (fewer while the chunk has fewer), evaluated at t."""
        history = self._history[: self.order + 1]
        if len(history) == 1:
            return history[0][1]
        return _combine(history, lagrange_weights([s for s, _ in history], t))

    def commit(self, model: FlowModel, clean_BLC: torch.Tensor, *, start_frame: int) -> None:
        self.context.commit(model, clean_BLC, start_frame=start_frame)

    def bytes_held(self) -> int:
        """The context policy's bytes plus the stored features and velocities of the current chunk (a velocity
        held twice, e.g. a reused one awaiting its correction, counted once)."""
        held = {id(v): v.nbytes for v in [*(v for _, v in self._history), *(u for _, _, u in self._skipped)]}
        return self.context.bytes_held() + self.features.nbytes() + sum(held.values())


def _euler_steps(num_evaluations: int, times: Sequence[float] | None) -> list[float]:
    """The step dt_k = t_(k+1) - t_k of each evaluation k of an Euler chunk over `times` ((steps + 1,) times);
    a UsageError without the grid or when the chunk makes more evaluations than steps (another solver)."""
    if times is None:
        raise UsageError(
            "FlowCache(correct=True) needs the chunk's time grid",
            fix="call begin_chunk(start_frame, num_evaluations, times=...) (flow_stream does)",
        )
    grid = [float(t) for t in times]
    if num_evaluations != len(grid) - 1:
        raise UsageError(
            f"FlowCache(correct=True) corrects Euler steps, but this chunk makes {num_evaluations} evaluations "
            f"over {len(grid) - 1} steps (another solver, e.g. Heun)",
            fix="use the Euler solver, or pass correct=False",
        )
    return [b - a for a, b in zip(grid[:-1], grid[1:], strict=True)]


def _combine(history: list[tuple[float, torch.Tensor]], weights: list[float]) -> torch.Tensor:
    """sum_j weights[j] * history[j]'s velocity."""
    out = history[0][1] * weights[0]
    for (_, v), w in zip(history[1:], weights[1:], strict=True):
        out = out.add(v, alpha=w)
    return out
