import pytest
import torch
from flow_tiny import tiny_flow_model, tiny_layout

from genmotion.cache import CachePolicy, FeatureCache, Recompute, RollingWindow, SharedClean
from genmotion.engine import FlowLoopConfig, flow_generate
from genmotion.errors import UsageError
from genmotion.nn import TinyFlowModel
from genmotion.sampling import CLEAN_TIME, timesteps

LAYOUT = tiny_layout(2)


def _model() -> TinyFlowModel:
    return tiny_flow_model(2)


def _run(
    policy: CachePolicy,
    frames: int = 7,
    solver: str = "euler",
    prefix: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    config = FlowLoopConfig(num_frames=frames, num_steps=3, solver=solver)  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(0)
    model = _model().to(dtype)
    return flow_generate(model, policy, LAYOUT, config, generator=gen, batch=2, prefix_BFNC=prefix, dtype=dtype)


@pytest.mark.parametrize("solver", ["euler", "heun"])
def test_shared_clean_equals_recompute_with_fewer_tokens(solver):
    recompute, shared = Recompute(), SharedClean()
    a, b = _run(recompute, solver=solver), _run(shared, solver=solver)
    assert a.shape == (2, 7, 2, 3)
    assert (a - b).abs().max().item() <= 1e-5
    assert shared.stats.tokens_processed < recompute.stats.tokens_processed
    assert shared.forwards_skipped == 0 and shared.bytes_held() > 0


def test_shared_clean_window_equals_masked_recompute_and_prefix():
    prefix = torch.randn(2, 3, 2, 3, generator=torch.Generator().manual_seed(5))
    a = _run(Recompute(window=3), prefix=prefix)
    b = _run(SharedClean(context_frames=3), prefix=prefix)
    assert (a - b).abs().max().item() <= 1e-5
    assert not torch.allclose(a, _run(Recompute(), prefix=prefix), atol=1e-4)  # the window matters


def test_shared_clean_is_exact_up_to_rounding_in_float64():
    """In float64 the only difference left between the ring-buffered cache and the masked recompute over the whole
    history (after the window has wrapped several times) is rounding: ~1e-15, where fp32 leaves ~1e-6."""
    exact = _run(Recompute(window=3), frames=11, dtype=torch.float64)
    shared = _run(SharedClean(context_frames=3), frames=11, dtype=torch.float64)
    assert exact.dtype == torch.float64
    assert (exact - shared).abs().max().item() <= 1e-12


def _reference_rolling(sink: int, window: int, frames: int = 7) -> torch.Tensor:
    """Recompute everything each step with a hand-built window mask; no cache, no policy."""
    model, N, F = _model(), LAYOUT.tokens_per_frame, LAYOUT.frames_per_chunk
    gen = torch.Generator().manual_seed(0)
    history, chunk_of = torch.zeros(2, 0, 3), []  # chunk_of[f] = first frame of the chunk f was made in
    times = [float(t) for t in timesteps(3)]
    with torch.no_grad():
        for start in range(0, frames, F):
            count = min(F, frames - start)
            x = torch.randn(2, count * N, 3, generator=gen)
            chunk_of += [start] * count
            ids = [f for f in range(start + count) for _ in range(N)]
            mask = torch.tensor(
                [[g <= f and (g < sink or g >= chunk_of[f] - window) for g in ids] for f in ids], dtype=torch.bool
            )
            for t, t_next in zip(times[:-1], times[1:], strict=True):
                inputs = torch.cat([history, x], dim=1)
                t_BL = torch.full(inputs.shape[:2], CLEAN_TIME)
                t_BL[:, history.shape[1] :] = t
                v = model(inputs, t_BL, torch.tensor(ids), mask=mask)[:, history.shape[1] :]
                x = x + (t_next - t) * v
            history = torch.cat([history, x], dim=1)
    return history.view(2, frames, N, 3)


def test_rolling_window_equals_explicit_window_mask_reference():
    reference = _reference_rolling(sink=1, window=2)
    rolling = RollingWindow(sink=1, window=2)
    out = _run(rolling)
    assert (out - reference).abs().max().item() <= 1e-5
    assert (_run(Recompute(sink=1, window=2)) - reference).abs().max().item() <= 1e-5
    head_dim, depth, heads, capacity = 8, 2, 2, (1 + 2) * 2
    assert rolling.bytes_held() == depth * (2 * 2 * heads * capacity * head_dim * 4 + 2 * heads * capacity * 8)


def test_policy_misuse_is_a_usage_error():
    policy = SharedClean()
    with pytest.raises(UsageError, match="before start"):
        policy.velocity(_model(), torch.zeros(1, 2, 3), 0.0, start_frame=0)
    with pytest.raises(UsageError, match="window"):
        RollingWindow(sink=1, window=0)


def test_feature_cache():
    store = FeatureCache()
    store.put(0, "residual", torch.zeros(2, 3))
    store.put(1, "residual", torch.zeros(4))
    assert store.nbytes() == 40 and (0, "residual") in store
    store.drop_chunk(0)
    assert store.get(0, "residual") is None and len(store) == 1
