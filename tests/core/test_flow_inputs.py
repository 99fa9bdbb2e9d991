"""The flow-model front (`flow_inputs`) and AdaLN with per-row conditions (`TokenConditions`)."""

import pytest
import torch
from torch import nn

from genmotion.errors import UsageError
from genmotion.nn.blocks import AdaLNBlock, ConditionMemo, TanhGELU, TokenConditions
from genmotion.nn.rope import Rotary
from genmotion.nn.tiny import MAX_DISTINCT_TIMES, flow_inputs, timestep_embedding


def _parts(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return {
        "proj_in": nn.Linear(4, 16),
        "spatial_NW": torch.randn(3, 16),
        "time_mlp": nn.Sequential(nn.Linear(8, 8), nn.SiLU(), nn.Linear(8, 8)),
        "cond_dim": 8,
    }


def test_one_time_gives_one_row_and_matches_per_token():
    parts, x = _parts(), torch.randn(2, 6, 4)
    t = torch.full((2, 6), 0.3)
    h, cond = flow_inputs(x, t, **parts)
    assert isinstance(cond, TokenConditions) and cond.index is None and cond.rows[0].shape == (2, 8)
    per_token = parts["time_mlp"](timestep_embedding(t, 8))
    torch.testing.assert_close(cond.rows[0][:, None].expand(2, 6, 8), per_token, rtol=0, atol=1e-6)
    torch.testing.assert_close(h, parts["proj_in"](x) + parts["spatial_NW"].repeat(2, 1))


def test_mixed_times_modulate_each_token_as_a_uniform_call_would():
    """Clean frames at t=1 and a noisy chunk at t=0.3 in one call: the noisy tokens' AdaLN vectors are
    bit-identical to those of a call holding only the noisy chunk (what makes cached == recomputed)."""
    parts, block = _parts(), AdaLNBlock(16, 2, 8)
    extra = torch.randn(2, 8)
    x = torch.randn(2, 6, 4)
    t = torch.cat([torch.ones(2, 3), torch.full((2, 3), 0.3)], dim=1)
    _, mixed = flow_inputs(x, t, extra_BE=extra, **parts)
    _, alone = flow_inputs(x[:, 3:], t[:, 3:], extra_BE=extra, **parts)
    assert isinstance(mixed, TokenConditions) and mixed.index is not None
    assert mixed.index.tolist() == [[1, 1, 1, 0, 0, 0]] * 2
    mod_mixed, mod_alone = mixed.modulation(block.ada_lin), alone.modulation(block.ada_lin)
    assert mod_mixed.shape == (2, 6, 96) and mod_alone.shape == (2, 1, 96)
    assert torch.equal(mod_mixed[:, 3:], mod_alone.expand(2, 3, 96))
    # and the block itself agrees with the per-token condition it replaces
    h = torch.randn(2, 6, 16)
    per_token = parts["time_mlp"](timestep_embedding(t, 8)) + extra[:, None]
    pos, rot = torch.arange(6), Rotary(8)
    torch.testing.assert_close(block(h, pos, rot, cond=mixed), block(h, pos, rot, cond=per_token), rtol=0, atol=1e-5)


def test_many_times_fall_back_to_per_token_and_frames_are_checked():
    parts = _parts()
    t = torch.linspace(0, 1, 6).expand(2, 6)
    _, cond = flow_inputs(torch.randn(2, 6, 4), t, **parts)
    assert MAX_DISTINCT_TIMES < 6 and isinstance(cond, torch.Tensor) and cond.shape == (2, 6, 8)
    with pytest.raises(UsageError, match="whole frames"):
        flow_inputs(torch.randn(2, 5, 4), t[:, :5], **parts)


def test_memo_makes_each_time_once_and_changes_no_bit():
    """With a `ConditionMemo` (sampling), a time's row and each block's AdaLN parts are made at its first call
    and reused after; the block's output is bit-identical to the memo-less call, for one time and for two."""
    parts, blocks = _parts(), [AdaLNBlock(16, 2, 8), AdaLNBlock(16, 2, 8)]
    extra, memo = torch.randn(2, 8), ConditionMemo()
    h, pos, rot = torch.randn(2, 6, 16), torch.arange(6), Rotary(8)

    def run(t: torch.Tensor, memo: ConditionMemo | None) -> torch.Tensor:
        _, cond = flow_inputs(torch.randn(2, 6, 4), t, extra_BE=extra, memo=memo, **parts)
        out = h
        for block in blocks:
            out = block(out, pos, rot, cond=cond)
        return out

    one, two = torch.full((2, 6), 0.25), torch.cat([torch.ones(2, 3), torch.full((2, 3), 0.25)], dim=1)
    with torch.no_grad():
        for t in (one, two, one, two):
            assert torch.equal(run(t, memo), run(t, None))
        assert len(memo) == 2 + 2 * 2  # rows of t=0.25 and t=1; per block: the one-row parts and the two-row table
        with torch.enable_grad():  # training: the memo is not consulted (weights change between calls)
            run(torch.full((2, 6), 0.5), memo)
    assert len(memo) == 6


def test_tanh_gelu_matches_torch_and_keeps_the_dtype():
    x = torch.randn(4096) * 4
    gelu = TanhGELU()
    torch.testing.assert_close(gelu(x), nn.functional.gelu(x, approximate="tanh"), rtol=0, atol=2e-6)
    assert gelu(x.bfloat16()).dtype == torch.bfloat16 and "a" not in gelu.state_dict()


def test_memo_entries_follow_the_model_dtype():
    """A memo filled by a float32 model makes new entries once the model runs in float64 (or bf16), never
    handing the old dtype's rows to the new one; the time embedding is cast to the model's dtype."""
    parts, memo, extra = _parts(), ConditionMemo(), torch.randn(2, 8)
    t = torch.full((2, 6), 0.3)
    with torch.no_grad():
        _, c32 = flow_inputs(torch.randn(2, 6, 4), t, extra_BE=extra, memo=memo, **parts)
        filled = len(memo)
        for module in (parts["proj_in"], parts["time_mlp"]):
            module.double()
        _, c64 = flow_inputs(torch.randn(2, 6, 4).double(), t, extra_BE=extra.double(), memo=memo, **parts)
    assert isinstance(c32, TokenConditions) and isinstance(c64, TokenConditions)
    assert c32.rows[0].dtype == torch.float32 and c64.rows[0].dtype == torch.float64
    assert len(memo) == 2 * filled
