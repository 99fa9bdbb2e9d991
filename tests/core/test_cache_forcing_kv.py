import json

import pytest
import torch
from flow_tiny import tiny_flow_model, tiny_layout

from genmotion.cache import (
    ForcingKV,
    HeadProfile,
    RollingWindow,
    SharedClean,
    load_head_profile,
    profile_heads,
    save_head_profile,
)
from genmotion.cache.forcing_kv import EMPTY_POSITION, segment_ids, segment_similarity
from genmotion.cache.profile import recent_mass_sums
from genmotion.engine import FlowLoopConfig, flow_generate
from genmotion.errors import InputError, UsageError
from genmotion.nn import TinyFlowModel

LAYOUT = tiny_layout(6)


def _model() -> TinyFlowModel:
    return tiny_flow_model(6)


def _profile(static) -> HeadProfile:
    return HeadProfile(recent_mass=tuple(tuple(float(s) for s in row) for row in static), static=static)


def _run(policy, frames: int = 9, prefix=None) -> torch.Tensor:
    config = FlowLoopConfig(num_frames=frames, num_steps=2)
    gen = torch.Generator().manual_seed(0)
    return flow_generate(_model(), policy, LAYOUT, config, generator=gen, batch=2, prefix_BFNC=prefix)


def test_classification_of_a_constructed_attention_pattern():
    # history frames 0..7 before a chunk at frame 8; frame 0 is the sink; last 4 frames are 4..7
    frames = torch.arange(8).view(1, 1, 8).expand(1, 3, 8)
    probs = torch.zeros(1, 3, 2, 8)
    probs[:, 0, :, 4:] = 0.9 / 4  # static: 90 % on the last 4 frames
    probs[:, 0, :, 1:4] = 0.1 / 3
    probs[:, 1, :, 1:] = 1 / 7  # dynamic: uniform over history
    probs[:, 2, :, 0] = 0.5  # the sink does not count: 0.4 / 0.5 of the rest is recent -> exactly 0.8
    probs[:, 2, :, 4:] = 0.4 / 4
    probs[:, 2, :, 1:4] = 0.1 / 3
    recent, history = recent_mass_sums(probs, frames, 8, last_frames=4, skip_first=1)
    profile = HeadProfile.classify((recent / history).unsqueeze(0))
    assert profile.static == ((True, False, True),)
    assert profile.recent_mass[0][0] == pytest.approx(0.9) and profile.recent_mass[0][1] == pytest.approx(4 / 7)


def test_all_static_equals_rolling_window_and_all_dynamic_full_keep_equals_shared():
    prefix = torch.randn(2, 5, 6, 3, generator=torch.Generator().manual_seed(3))
    static = _profile(((True, True), (True, True)))
    dynamic = _profile(((False, False), (False, False)))
    for p in (None, prefix):
        rolling = _run(RollingWindow(sink=1, window=2), prefix=p)
        assert (_run(ForcingKV(static, sink=1, recent=2), prefix=p) - rolling).abs().max().item() <= 1e-5
        full = _run(ForcingKV(dynamic, keep_ratio=1.0), prefix=p)
        assert (full - _run(SharedClean(), prefix=p)).abs().max().item() <= 1e-5


def test_segments_and_their_choice():
    assert segment_ids(6, 6).tolist() == [0, 1, 2, 3, 4, 5]
    assert segment_ids(8, 3).tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    with pytest.raises(UsageError, match="segments"):
        segment_ids(4, 6)
    frame = torch.randn(1, 6, 5, generator=torch.Generator().manual_seed(0))
    following = frame.clone()
    following[:, 2] = -frame[:, 2]  # segment 2 flips: similarity -1, the others stay at 1
    sim = segment_similarity(frame, following, segment_ids(6, 3))
    assert sim[0].tolist() == pytest.approx([1.0, 0.0, 1.0], abs=1e-6)


def test_dynamic_heads_keep_sink_recent_and_the_chosen_segments_in_every_layer():
    profile = _profile(((True, False), (False, True)))
    policy = ForcingKV(profile, sink=1, recent=1, segments=3, keep_ratio=1 / 3)
    out = _run(policy, frames=9)
    assert torch.isfinite(out).all()
    chosen = {}  # (batch, frame) -> kept segment ids, from the recorded choices
    for first, mask in policy.selections:
        assert int(mask.sum(dim=(1, 2))[0]) == round(mask.shape[1] * 3 / 3)
        for b, a, g in mask.nonzero().tolist():
            chosen.setdefault((b, first + a), set()).add(g)
    seg = segment_ids(6, 3)
    committed = policy._frames
    for layer, static_row in zip(policy.cache, profile.static, strict=True):
        for h, static in enumerate(static_row):
            for b in range(2):
                pos = layer.positions[b, h]
                pos = pos[pos < EMPTY_POSITION]
                frames = sorted(set(pos.tolist()))
                older = [f for f in frames if 1 <= f < committed - 1]
                assert 0 in frames and committed - 1 in frames  # sink and the most recent frame
                if static:
                    assert older == []
                else:
                    for f in older:
                        tokens = (pos == f).sum().item()
                        assert tokens == sum(int((seg == g).sum()) for g in chosen[(b, f)])


def test_bytes_drop_against_the_full_window():
    shared = SharedClean()
    _run(shared, frames=24)
    static = ForcingKV(_profile(((True, True), (True, True))))
    _run(static, frames=24)
    mixed = ForcingKV(_profile(((True, False), (False, True))))
    _run(mixed, frames=24)
    assert static.bytes_held() < mixed.bytes_held() < 0.6 * shared.bytes_held()
    # between chunks the buffers hold exactly the kept entries: sink + recent frames for all-static layers
    assert [layer.capacity for layer in static.cache] == [2 * LAYOUT.tokens_per_frame] * 2
    assert all(layer.capacity == layer.length for layer in mixed.cache)


def test_profile_is_deterministic_and_round_trips(tmp_path):
    a = profile_heads(_model(), LAYOUT, generator=torch.Generator().manual_seed(1), num_chunks=5, num_steps=2)
    b = profile_heads(_model(), LAYOUT, generator=torch.Generator().manual_seed(1), num_chunks=5, num_steps=2)
    assert a == b and a.num_layers == 2 and a.num_heads == 2 and a.samples["evaluations"] > 0
    path = save_head_profile(a, tmp_path / "heads.json")
    assert load_head_profile(path) == a
    assert json.loads(path.read_text())["format"] == "genmotion.head-profile"
    assert isinstance(ForcingKV(path).profile, HeadProfile)
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(InputError, match="head profile"):
        load_head_profile(tmp_path / "bad.json")
    with pytest.raises(UsageError, match="no history"):
        profile_heads(_model(), LAYOUT, generator=torch.Generator(), num_chunks=3)


def test_a_profile_for_another_model_is_a_usage_error():
    with pytest.raises(UsageError, match="3 layers"):
        _run(ForcingKV(_profile(((True, True),) * 3)))
