import math

import pytest
import torch
from flow_tiny import tiny_flow_model, tiny_layout

from genmotion.cache import (
    AttentionProbe,
    FlowCacheKV,
    SharedClean,
    attention_probabilities,
    importance_redundancy_scores,
)
from genmotion.engine import FlowLoopConfig, flow_generate
from genmotion.errors import UsageError
from genmotion.nn import TinyFlowModel

LAYOUT = tiny_layout(3)


def _model() -> TinyFlowModel:
    return tiny_flow_model(3)


def _run(policy, frames: int = 8, model=None) -> torch.Tensor:
    config = FlowLoopConfig(num_frames=frames, num_steps=2)
    model = _model() if model is None else model
    return flow_generate(model, policy, LAYOUT, config, generator=torch.Generator().manual_seed(0), batch=2)


def _reference_scores(call, keys, lam, pool, *, history_only=False):
    """FlowCache's score written out with loops: no shared code with the library. `history_only`: the
    SkyReels-V2 rule, the queries' softmax over the cached (clean) entries alone."""
    B, H, L, D = call.q.shape
    S = keys.shape[2]
    rotary = call.rotary
    q_frames = call.positions
    out = torch.empty(B, H, S)
    for b in range(B):
        for h in range(H):
            history = call.history_positions[b, h]  # per head after an eviction
            k_frames = history if history_only else torch.cat([history, call.positions])
            q = rotary(call.q[b, h], q_frames)
            k = rotary(keys[b, h], k_frames)
            attn = torch.zeros(S)
            for i in range(L):
                logits = torch.tensor(
                    [float(q[i] @ k[j]) / math.sqrt(D) if k_frames[j] <= q_frames[i] else -math.inf for j in range(S)]
                )
                attn += torch.softmax(logits, dim=0) / L
            pooled = torch.tensor([float(attn[max(0, j - pool // 2) : j + pool // 2 + 1].max()) for j in range(S)])
            unit = keys[b, h] / (keys[b, h].norm(dim=-1, keepdim=True) + 1e-8)
            sim = torch.tensor([sum(float(unit[j] @ unit[m]) for m in range(S) if m != j) / S for j in range(S)])
            out[b, h] = lam * pooled - (1 - lam) * torch.softmax(sim, dim=0)
    return out


class _Recording(FlowCacheKV):
    def scores(self, call, keys_BHSD):
        self.records.append((call, keys_BHSD))
        return super().scores(call, keys_BHSD)


def test_kept_indices_are_the_top_scoring_ones_of_a_direct_reference():
    policy = _Recording(budget=7, lam=0.3, pool=3)
    policy.records = []
    _run(policy, frames=8)
    kept = [index for layers in policy.kept for index in layers]
    assert len(policy.records) == len(kept) >= 4
    for (call, keys), index in zip(policy.records, kept, strict=True):
        reference = _reference_scores(call, keys, lam=0.3, pool=3)
        assert torch.equal(index, reference.topk(7, dim=-1).indices.sort(dim=-1).values)
        fast = importance_redundancy_scores(attention_probabilities(call).mean(2), keys, lam=0.3, pool=3)
        assert torch.allclose(fast, reference, atol=1e-5)


def test_budget_never_exceeded_bytes_flat_and_denoising_chunk_never_evicted():
    seen = []

    class Checking(FlowCacheKV):
        def velocity(self, model, x_BLC, t, *, start_frame):
            cache = self._state()
            assert cache.length <= self.budget
            assert bool((cache[0].positions < start_frame).all())  # only committed frames are ever in the cache
            with AttentionProbe(model) as probe:
                v = super().velocity(model, x_BLC, t, start_frame=start_frame)
            for call in probe.calls:  # every token of the chunk is attended by its own frame's queries
                own = attention_probabilities(call)[..., call.history_k.shape[2] :]
                seen.append(bool((own[..., :, :3].sum(-1) > 0).all()))
            return v

    short, long = Checking(budget=5), Checking(budget=5)
    _run(short, frames=4)
    _run(long, frames=12)
    assert seen and all(seen)
    assert short.bytes_held() == long.bytes_held()
    shared = SharedClean()
    _run(shared, frames=12)
    assert long.bytes_held() < shared.bytes_held()


def test_a_budget_that_holds_everything_equals_shared_clean():
    out = _run(FlowCacheKV(budget=8 * 3))
    assert (out - _run(SharedClean())).abs().max().item() <= 1e-5


def test_misuse_is_a_usage_error():
    with pytest.raises(UsageError, match="budget"):
        FlowCacheKV(budget=0)
    with pytest.raises(UsageError, match="lam"):
        FlowCacheKV(budget=4, lam=2.0)


def test_denoising_queries_cut_the_history_by_the_first_evaluation_and_keep_each_new_chunk(monkeypatch):
    import genmotion.cache.flowcache_kv as flowcache_kv

    probed = []
    real = flowcache_kv._history_attention
    monkeypatch.setattr(flowcache_kv, "_history_attention", lambda call: probed.append(call) or real(call))
    budget, chunk = 10, LAYOUT.chunk_tokens

    class Checking(FlowCacheKV):
        def velocity(self, model, x_BLC, t, *, start_frame):
            assert self._state().length <= self.budget
            return super().velocity(model, x_BLC, t, start_frame=start_frame)

        def commit(self, model, clean_BLC, *, start_frame):
            super().commit(model, clean_BLC, start_frame=start_frame)
            cache = self._state()
            assert cache.length <= self.budget  # never over budget, and the new chunk is kept whole
            new = cache[0].positions[..., -chunk:]
            assert bool((new == LAYOUT.frame_ids(start_frame, chunk)).all())

    policy = Checking(budget, lam=0.3, pool=3, queries="denoising")
    _run(policy, frames=10)
    layers = len(policy._state())
    assert len(policy.kept) >= 2 and len(probed) == layers * (len(policy.kept) + 1)  # the last chunk: no commit
    for k, kept in enumerate(policy.kept):
        for layer, index in enumerate(kept):
            call = probed[k * layers + layer]
            assert call.q.shape[2] == chunk  # the denoised chunk's queries, at its first evaluation
            reference = _reference_scores(call, call.history_k, lam=0.3, pool=3, history_only=True)
            assert torch.equal(index, reference.topk(budget - chunk, dim=-1).indices.sort(dim=-1).values)
    short = FlowCacheKV(budget, queries="denoising")
    _run(short, frames=4)
    assert short.bytes_held() == policy.bytes_held()


def test_denoising_queries_need_room_beside_a_chunk():
    with pytest.raises(UsageError, match="budget above"):
        _run(FlowCacheKV(6, queries="denoising"), frames=4)
    with pytest.raises(UsageError, match="queries"):
        FlowCacheKV(8, queries="noisy")


def test_an_out_of_order_commit_is_refused_before_the_history_is_cut():
    model, budget = _model(), 10
    policy = FlowCacheKV(budget, queries="denoising")
    policy.start(model, LAYOUT, batch=1, max_frames=8, like=torch.empty(0))
    g, chunk = torch.Generator().manual_seed(0), LAYOUT.chunk_tokens
    with torch.no_grad():
        for start in (0, 2):
            policy.commit(model, torch.randn(1, chunk, 3, generator=g), start_frame=start)
        policy.velocity(model, torch.randn(1, chunk, 3, generator=g), 0.5, start_frame=4)  # probed: over budget next
        before = policy._state()[0].positions.clone()
        with pytest.raises(UsageError, match="does not follow"):
            policy.commit(model, torch.randn(1, chunk, 3, generator=g), start_frame=6)
    assert torch.equal(policy._state()[0].positions, before)
