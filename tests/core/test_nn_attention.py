import pytest
import torch

from genmotion.errors import UsageError
from genmotion.nn import (
    attend,
    attention_backends,
    block_causal_mask,
    block_diagonal_mask,
    can_use_is_causal,
    causal_mask,
    chunk_window_mask,
    ids_from_lengths,
    positional_causal_args,
    register_attention_backend,
    sdpa_mask_args,
)


def _qkv(L: int = 6, S: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(2, 3, L, 8, generator=g),
        torch.randn(2, 3, S, 8, generator=g),
        torch.randn(2, 3, S, 8, generator=g),
    )


def test_backends_agree_and_causal_flag_equals_mask():
    q, k, v = _qkv()
    mask = causal_mask(6)
    ref = attend(q, k, v, mask=mask, backend="math")
    for backend in ("sdpa", "math"):
        assert torch.allclose(attend(q, k, v, is_causal=True, backend=backend), ref, atol=1e-6)
        assert torch.allclose(attend(q, k, v, mask=mask, backend=backend), ref, atol=1e-6)
    assert torch.allclose(attend(q, k, v), attend(q, k, v, backend="math"), atol=1e-6)


def test_causal_mask_is_bottom_right_aligned_for_cached_queries():
    q, k, v = _qkv(L=2, S=5)
    mask = causal_mask(2, 5)
    assert mask.tolist() == [[True, True, True, True, False], [True] * 5]
    full_q, _, _ = _qkv(L=5, S=5)
    full_q[:, :, 3:] = q
    full = attend(full_q, k, v, is_causal=True)
    assert torch.allclose(attend(q, k, v, mask=mask), full[:, :, 3:], atol=1e-6)


def test_backend_registry():
    assert {"sdpa", "math"} <= set(attention_backends())
    with pytest.raises(UsageError, match="already registered"):
        register_attention_backend("sdpa", lambda *a: a[0])
    with pytest.raises(UsageError, match="unknown attention backend"):
        attend(*_qkv(), backend="nope")
    with pytest.raises(UsageError, match="both a mask"):
        attend(*_qkv(), mask=causal_mask(6), is_causal=True)


def test_level_and_chunk_masks():
    ids = ids_from_lengths([1, 2, 3])
    assert ids.tolist() == [0, 1, 1, 2, 2, 2]
    m = block_causal_mask(ids)
    assert m[1].tolist() == [True, True, True, False, False, False]  # sees its whole level, not the next
    assert m[5].all()
    d = block_diagonal_mask(ids)
    assert d[2].tolist() == [False, True, True, False, False, False]


def test_sdpa_mask_args_picks_cheapest_form():
    assert sdpa_mask_args(None) == (None, False)
    assert sdpa_mask_args(torch.ones(3, 4, dtype=torch.bool)) == (None, False)
    assert sdpa_mask_args(causal_mask(4)) == (None, True)
    assert can_use_is_causal(causal_mask(4)) and not can_use_is_causal(causal_mask(2, 4))
    m, flag = sdpa_mask_args(causal_mask(2, 4))
    assert m is not None and not flag


def test_positional_causal_args_fast_paths():
    pos = torch.arange(5)
    assert positional_causal_args(pos, pos) == (None, True)
    assert positional_causal_args(torch.tensor([9]), torch.arange(10)) == (None, False)
    frames = torch.tensor([0, 0, 1, 1])
    m, flag = positional_causal_args(frames, frames)
    assert not flag and m is not None and m.tolist()[0] == [True, True, False, False]


def test_chunk_window_mask():
    frames = torch.arange(6)
    chunk_start = torch.tensor([0, 0, 2, 2, 4, 4])
    m = chunk_window_mask(frames, chunk_start, frames, sink=1, window=1)
    assert m[4].tolist() == [True, False, False, True, True, False]  # sink 0, window frame 3, itself
    assert m[5].tolist() == [True, False, False, True, True, True]
    assert torch.equal(chunk_window_mask(frames, chunk_start, frames, sink=0, window=None), causal_mask(6))


def test_prefill_into_empty_cache_uses_the_causal_flag():
    pos = torch.arange(4)
    assert positional_causal_args(pos, pos.view(1, 1, 4)) == (None, True)
    m, flag = positional_causal_args(pos[2:], pos.view(1, 1, 4))
    assert not flag and m is not None and m.shape == (2, 4)


def test_additive_float_mask_equals_boolean_mask():
    q, k, v = _qkv()
    mask = causal_mask(6)
    additive = torch.zeros(6, 6).masked_fill(~mask, float("-inf"))
    for backend in ("sdpa", "math"):
        assert torch.allclose(attend(q, k, v, mask=additive, backend=backend), attend(q, k, v, mask=mask), atol=1e-6)
    with pytest.raises(UsageError, match="additive"):
        attend(q, k, v, mask=additive.double())


def test_tanh_gelu_matches_torch():
    from genmotion.nn.blocks import TanhGELU

    x = torch.linspace(-12, 12, 2001, dtype=torch.float64).requires_grad_()
    ours, ref = TanhGELU()(x), torch.nn.functional.gelu(x, approximate="tanh")
    assert torch.allclose(ours, ref, atol=1e-12)
    (g_ours,) = torch.autograd.grad(ours.sum(), x)
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    assert torch.allclose(g_ours, g_ref, atol=1e-10)
