import pytest
import torch
from flow_tiny import tiny_flow_model, tiny_layout

from genmotion.cache import FlowCache, PolicyBase, RollingWindow, SharedClean
from genmotion.cache.flowcache import divided_difference_weights, lagrange_weights, relative_l1
from genmotion.engine import FlowLoopConfig, flow_generate
from genmotion.errors import UsageError
from genmotion.nn import TinyFlowModel
from genmotion.sampling.flow import integrate, timesteps

LAYOUT = tiny_layout(2)


def _model() -> TinyFlowModel:
    return tiny_flow_model(2)


def _run(policy, frames: int = 6, steps: int = 6) -> torch.Tensor:
    config = FlowLoopConfig(num_frames=frames, num_steps=steps)
    return flow_generate(_model(), policy, LAYOUT, config, generator=torch.Generator().manual_seed(0), batch=2)


def test_zero_threshold_equals_the_context_policy_exactly():
    assert torch.equal(_run(FlowCache(thresh=0.0, warmup=0)), _run(SharedClean()))
    rolling = FlowCache(thresh=0.0, warmup=0, context=RollingWindow(sink=1, window=2))
    assert torch.equal(_run(rolling), _run(RollingWindow(sink=1, window=2)))
    assert rolling.forwards_skipped == 0 and rolling.stats is rolling.context.stats


def test_large_threshold_skips_all_but_first_warmup_and_last():
    policy = FlowCache(thresh=1e9, warmup=2)
    _run(policy, frames=4, steps=6)
    assert policy.trace == [[True, True, False, False, False, True]] * 2
    assert policy.forwards_skipped == 2 * 3 and policy.stats.forwards_run == 2 * 3 + 1  # + one commit
    assert policy.bytes_held() > policy.context.bytes_held()  # stored input features and velocity


class _Counting(PolicyBase):
    """Context stub: the velocity of the k-th computed evaluation is k, so reuse is visible."""

    def start(self, model, layout, *, batch, max_frames, like):
        self.layout = layout

    def velocity(self, model, x_BLC, t, *, start_frame):
        self.stats.forwards_run += 1
        return torch.full_like(x_BLC, float(self.stats.forwards_run))

    def commit(self, model, clean_BLC, *, start_frame):
        return None

    def bytes_held(self):
        return 0


def test_skip_rule_follows_the_accumulated_relative_l1_change():
    base = torch.ones(1, 2, 3)
    scales = [1.0, 1.1, 1.2, 1.21, 1.22, 1.5, 1.51, 1.52]  # input of each evaluation
    xs = [base * s for s in scales]
    thresh, warmup = 0.05, 2
    policy = FlowCache(thresh=thresh, warmup=warmup, context=_Counting())
    policy.start(None, LAYOUT, batch=1, max_frames=2, like=torch.empty(0))
    policy.begin_chunk(0, len(xs))
    outs = [float(policy.velocity(None, x, 0.0, start_frame=0)[0, 0, 0]) for x in xs]
    expected, acc, computed, last = [], 0.0, 0, 0.0  # the documented rule, written out
    for k, x in enumerate(xs):
        if 0 < k < len(xs) - 1 and computed >= warmup:
            acc += relative_l1(x, xs[k - 1])
            if acc < thresh:
                expected.append(last)
                continue
        acc, computed, last = 0.0, computed + 1, float(computed + 1)
        expected.append(last)
    assert outs == expected
    assert policy.trace[-1] == [True, True, True, False, False, True, False, True]


class _LinearInTime(_Counting):
    """Context stub whose velocity is 2 + 3 t: a first-order forecast of it is exact."""

    def velocity(self, model, x_BLC, t, *, start_frame):
        self.stats.forwards_run += 1
        return torch.full_like(x_BLC, 2.0 + 3.0 * t)


def _evaluate(policy, times):
    policy.start(None, LAYOUT, batch=1, max_frames=2, like=torch.empty(0))
    policy.begin_chunk(0, len(times))
    return [float(policy.velocity(None, torch.ones(1, 2, 3), t, start_frame=0)[0, 0, 0]) for t in times]


def test_forecast_extends_the_last_two_computed_velocities_linearly():
    times = [0.0, 0.1, 0.25, 0.3, 0.5, 0.6, 0.9]
    forecast = _evaluate(FlowCache(thresh=1e9, warmup=2, order=1, context=_LinearInTime()), times)
    assert forecast == pytest.approx([2.0 + 3.0 * t for t in times], abs=1e-6)
    reuse = FlowCache(thresh=1e9, warmup=2, order=0, context=_LinearInTime())
    assert _evaluate(reuse, times) == pytest.approx([2.0, 2.3, 2.3, 2.3, 2.3, 2.3, 4.7])
    counting = FlowCache(thresh=1e9, warmup=2, order=1, context=_Counting())  # v = 1, 2 at t = 0, 0.1
    assert _evaluate(counting, times) == pytest.approx([1.0, 2.0, 3.5, 4.0, 6.0, 7.0, 3.0])
    assert counting.trace[-1] == [True, True, False, False, False, False, True]


def test_forecast_with_one_computed_velocity_reuses_it():
    times = [0.0, 0.2, 0.4, 0.6]
    policy = FlowCache(thresh=1e9, warmup=1, order=1, context=_LinearInTime())
    assert _evaluate(policy, times) == pytest.approx([2.0, 2.0, 2.0, 3.8])


class _Quadratic(_Counting):
    """Context stub whose velocity is 1 + 2 t - 4 t^2 (per element, scaled by the input)."""

    @staticmethod
    def value(t: float) -> float:
        return 1.0 + 2.0 * t - 4.0 * t * t

    def velocity(self, model, x_BLC, t, *, start_frame):
        self.stats.forwards_run += 1
        return x_BLC * self.value(t)


def test_second_order_forecast_is_exact_on_a_quadratic_velocity():
    times = [0.0, 0.1, 0.25, 0.3, 0.5, 0.6, 0.9]
    policy = FlowCache(thresh=1e9, warmup=3, order=2, context=_Quadratic())
    assert _evaluate(policy, times) == pytest.approx([_Quadratic.value(t) for t in times], abs=1e-6)
    assert policy.trace[-1] == [True, True, True, False, False, False, True]


def test_divided_difference_and_lagrange_weights():
    nodes = [0.9, 0.5, 0.2, -0.1]
    f = lambda t: 3.0 * t**3 - t + 2.0  # third divided difference of a cubic: its leading coefficient
    assert sum(w * f(t) for w, t in zip(divided_difference_weights(nodes), nodes, strict=True)) == pytest.approx(3.0)
    assert sum(w * f(t) for w, t in zip(lagrange_weights(nodes, 0.37), nodes, strict=True)) == pytest.approx(f(0.37))


def test_error_rule_estimates_the_linear_forecasts_error_exactly_on_a_quadratic():
    """For a quadratic velocity, f[t0, t1, t2] (t - t0)(t - t1) is exactly the line's error at t."""
    policy = FlowCache(thresh=0.0, warmup=3, order=1, rule="error", context=_Quadratic())
    _evaluate(policy, [0.0, 0.2, 0.3])  # three computed (thresh 0 never skips)
    for t in (0.35, 0.5, 0.8):
        line = _Quadratic.value(0.3) + (_Quadratic.value(0.3) - _Quadratic.value(0.2)) * (t - 0.3) / 0.1
        relative = abs(_Quadratic.value(t) - line) / abs(_Quadratic.value(0.3))
        assert policy._forecast_error(t) == pytest.approx(relative, rel=1e-5)


def test_error_rule_skips_while_the_estimate_stays_under_thresh():
    times = [0.0, 0.1, 0.2, 0.3, 0.45, 0.6, 0.75, 0.9, 1.0]
    thresh = 0.15
    policy = FlowCache(thresh=thresh, warmup=2, order=1, rule="error", context=_Quadratic())
    outs = _evaluate(policy, times)
    expected, trace, known = [], [], []  # the documented rule, written out: known = computed (t, v), newest first
    for k, t in enumerate(times):
        if 0 < k < len(times) - 1 and len(known) >= 3:
            (t0, v0), (t1, v1), (t2, v2) = known[:3]
            second = ((v0 - v1) / (t0 - t1) - (v1 - v2) / (t1 - t2)) / (t0 - t2)
            if abs(second * (t - t0) * (t - t1)) / abs(v0) < thresh:
                expected.append(v0 + (v0 - v1) * (t - t0) / (t0 - t1))
                trace.append(False)
                continue
        known.insert(0, (t, _Quadratic.value(t)))
        expected.append(known[0][1])
        trace.append(True)
    assert outs == pytest.approx(expected, abs=1e-6)
    assert policy.trace[-1] == trace
    assert False in trace and trace.count(True) > 3  # the case exercises both decisions


def test_error_rule_never_skips_before_it_has_order_plus_two_velocities():
    policy = FlowCache(thresh=1e9, warmup=0, order=1, rule="error", context=_LinearInTime())
    assert _evaluate(policy, [0.0, 0.1, 0.2, 0.3, 0.4, 1.0]) == pytest.approx([2.0, 2.3, 2.6, 2.9, 3.2, 5.0])
    assert policy.trace[-1] == [True, True, True, False, False, True]


def test_a_time_evaluated_twice_keeps_only_its_newest_velocity():
    """Heun evaluates each step's end time again at the next step: the history holds distinct times."""
    times = [0.0, 0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4]
    policy = FlowCache(thresh=1e9, warmup=0, order=1, rule="error", context=_LinearInTime())
    assert _evaluate(policy, times) == pytest.approx([2.0 + 3.0 * t for t in times], abs=1e-6)
    assert policy.trace[-1] == [True, True, True, True, False, False, False, True]


def _euler(policy, times, x0: torch.Tensor) -> torch.Tensor:
    """The Euler state at the last of `times` from x0, every velocity through `policy` (its grid given)."""
    policy.start(None, LAYOUT, batch=1, max_frames=2, like=x0)
    policy.begin_chunk(0, len(times) - 1, times=[float(t) for t in times])
    return integrate(lambda x, t: policy.velocity(None, x, t, start_frame=0), x0, times)


def test_chord_correction_on_a_hand_computed_run():
    """Velocities 1 then 2 (the k-th computed is k), two reused steps between them: the returned velocity of
    the last step carries their error against the chord from v = 1 at t = 0 to v = 2 at t = 0.6."""
    times = [0.0, 0.1, 0.3, 0.6, 1.0]
    policy = FlowCache(thresh=1e9, warmup=1, correct=True, context=_Counting())
    policy.start(None, LAYOUT, batch=1, max_frames=2, like=torch.empty(0))
    policy.begin_chunk(0, 4, times=times)
    outs = [float(policy.velocity(None, torch.ones(1, 2, 3), t, start_frame=0)[0, 0, 0]) for t in times[:-1]]
    chord = lambda t: 1.0 + (2.0 - 1.0) * t / 0.6
    error = 0.2 * (chord(0.1) - 1.0) + 0.3 * (chord(0.3) - 1.0)  # dt_k (chord(t_k) - used_k), k = 1, 2
    assert outs == pytest.approx([1.0, 1.0, 1.0, 2.0 + error / 0.4], abs=1e-6)
    assert policy.trace[-1] == [True, False, False, True]


@pytest.mark.parametrize("order", [0, 1])
def test_chord_correction_gives_the_exact_euler_state_for_a_velocity_linear_in_t(order):
    """v = 2 + 3 t whatever the state: the chord through two computed velocities is v itself, so corrected
    skipping reproduces Euler with every step computed (to float64 rounding); plain reuse does not."""
    times = timesteps(10, "shifted", 3.0).double()  # uneven steps
    x0 = torch.randn(1, 2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = _euler(FlowCache(thresh=0.0, context=_LinearInTime()), times, x0)
    skipping = FlowCache(thresh=1e9, warmup=1, order=order, correct=True, context=_LinearInTime())
    assert torch.allclose(_euler(skipping, times, x0), exact, rtol=0, atol=1e-12)
    assert skipping.trace[-1] == [True, *[False] * 8, True]
    if order == 0:  # the line through two computed velocities is exact already when order is 1
        plain = _euler(FlowCache(thresh=1e9, warmup=1, context=_LinearInTime()), times, x0)
        assert (plain - exact).abs().max() > 0.1


def test_chord_correction_with_several_runs_of_skips():
    """The error rule computes again between skips: each run is corrected against its own chord."""
    times = timesteps(8).double()
    x0 = torch.zeros(1, 2, 3, dtype=torch.float64)
    exact = _euler(FlowCache(thresh=0.0, context=_LinearInTime()), times, x0)
    policy = FlowCache(thresh=0.2, warmup=2, rule="error", correct=True, context=_LinearInTime())
    assert torch.allclose(_euler(policy, times, x0), exact, rtol=0, atol=1e-12)
    assert policy.trace[-1] == [True, True, False, True, False, True, False, True]


def test_corrected_zero_threshold_equals_shared_clean_exactly():
    policy = FlowCache(thresh=0.0, warmup=0, rule="error", order=0, correct=True)
    assert torch.equal(_run(policy), _run(SharedClean())) and policy.forwards_skipped == 0


def test_corrected_skipping_runs_the_flow_loop():
    corrected, plain = FlowCache(thresh=1e9, warmup=2, correct=True), FlowCache(thresh=1e9, warmup=2)
    out, reused = _run(corrected), _run(plain)
    assert torch.isfinite(out).all() and not torch.equal(out, reused)
    assert corrected.trace == plain.trace and corrected.forwards_skipped == plain.forwards_skipped > 0


def test_correction_needs_euler_and_the_time_grid():
    with pytest.raises(UsageError, match="Euler") as err:
        config = FlowLoopConfig(num_frames=2, num_steps=4, solver="heun")
        flow_generate(_model(), FlowCache(correct=True), LAYOUT, config, generator=torch.Generator().manual_seed(0))
    assert "correct=False" in err.value.fix
    config = FlowLoopConfig(num_frames=2, num_steps=4, solver="heun")  # uncorrected FlowCache takes any solver
    flow_generate(_model(), FlowCache(thresh=1e9, warmup=1), LAYOUT, config, generator=torch.Generator().manual_seed(0))
    policy = FlowCache(correct=True)
    policy.start(_model(), LAYOUT, batch=1, max_frames=2, like=torch.empty(0))
    with pytest.raises(UsageError, match="time grid"):
        policy.begin_chunk(0, 4)


def test_misuse_is_a_usage_error():
    with pytest.raises(UsageError, match="thresh"):
        FlowCache(thresh=-1.0)
    with pytest.raises(UsageError, match="order"):
        FlowCache(order=3)
    with pytest.raises(UsageError, match="rule"):
        FlowCache(rule="magic")
    policy = FlowCache()
    policy.start(_model(), LAYOUT, batch=1, max_frames=2, like=torch.empty(0))
    with pytest.raises(UsageError, match="begin_chunk"):
        policy.velocity(_model(), torch.zeros(1, 4, 3), 0.0, start_frame=0)
