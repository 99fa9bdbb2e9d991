import pytest
import torch

from genmotion.cache import KVCache, LayeredKVCache
from genmotion.errors import UsageError


def _entries(g: torch.Generator, count: int, B: int = 2, H: int = 3, D: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(B, H, count, D, generator=g), torch.randn(B, H, count, D, generator=g)


def test_append_views_and_positions():
    g = torch.Generator().manual_seed(0)
    cache = KVCache(2, 3, 8, 4)
    k1, v1 = _entries(g, 3)
    k2, v2 = _entries(g, 2)
    cache.append(k1, v1)
    cache.append(k2, v2)
    assert cache.length == 5
    assert torch.equal(cache.keys, torch.cat([k1, k2], dim=2))
    assert torch.equal(cache.values, torch.cat([v1, v2], dim=2))
    assert cache.positions.shape == (2, 3, 5)
    assert torch.equal(cache.positions[0, 0], torch.arange(5))
    assert cache.keys.data_ptr() == cache.k.data_ptr()  # a view, not a copy
    k_h, v_h, p_h = cache.head(1)
    assert torch.equal(k_h, cache.keys[:, 1]) and p_h.shape == (2, 5)


def test_nbytes_exact():
    cache = KVCache(2, 3, 10, 4, dtype=torch.bfloat16)
    assert cache.nbytes() == 2 * (2 * 3 * 10 * 4 * 2) + 2 * 3 * 10 * 8
    cache.append(*_entries(torch.Generator().manual_seed(0), 5))
    assert cache.valid_nbytes() * 2 == cache.nbytes()
    layered = LayeredKVCache.allocate(3, 2, 3, 10, 4, dtype=torch.bfloat16)
    assert layered.nbytes() == 3 * cache.nbytes()


def test_full_linear_cache_raises_and_reset_reuses():
    cache = KVCache(2, 3, 4, 4)
    cache.append(*_entries(torch.Generator().manual_seed(0), 4))
    with pytest.raises(UsageError, match="full"):
        cache.append(*_entries(torch.Generator().manual_seed(1), 1))
    cache.reset()
    assert cache.length == 0
    cache.append(*_entries(torch.Generator().manual_seed(1), 2))
    assert torch.equal(cache.positions[0, 0], torch.arange(2))


@pytest.mark.parametrize("sink", [0, 2])
def test_ring_with_sink_equals_reference_window(sink):
    g = torch.Generator().manual_seed(0)
    capacity = 7
    cache = KVCache(2, 3, capacity, 4, ring=True, sink=sink)
    all_k, all_v = [], []
    for count in (3, 1, 4, 2, 9, 1, 5):  # includes one append longer than the ring
        k, v = _entries(g, count)
        cache.append(k, v)
        all_k.append(k)
        all_v.append(v)
        ref_k, ref_v = torch.cat(all_k, dim=2), torch.cat(all_v, dim=2)
        total = ref_k.shape[2]
        keep = (
            torch.arange(total)
            if total <= capacity
            else torch.cat([torch.arange(sink), torch.arange(total - (capacity - sink), total)])
        )
        assert torch.equal(cache.keys, ref_k[:, :, keep])
        assert torch.equal(cache.values, ref_v[:, :, keep])
        assert torch.equal(cache.positions[1, 2], keep)


def test_extend_without_commit_reads_once():
    g = torch.Generator().manual_seed(0)
    cache = KVCache(2, 3, 6, 4)
    k, v = _entries(g, 4)
    cache.append(k, v)
    k_new, v_new = _entries(g, 2)
    keys, values, pos = cache.extend(k_new, v_new, commit=False)
    assert torch.equal(keys, torch.cat([k, k_new], dim=2)) and torch.equal(pos[0, 0], torch.arange(6))
    assert cache.length == 4
    k_big, v_big = _entries(g, 5)  # does not fit: read through a copy, still uncommitted
    keys, _, _ = cache.extend(k_big, v_big, commit=False)
    assert torch.equal(keys, torch.cat([k, k_big], dim=2)) and cache.length == 4


def test_extend_commit_on_wrapped_ring_sees_old_context():
    g = torch.Generator().manual_seed(0)
    cache = KVCache(1, 1, 4, 2, ring=True, sink=1)
    k, v = _entries(g, 4, B=1, H=1, D=2)
    cache.append(k, v)
    k_new, v_new = _entries(g, 2, B=1, H=1, D=2)
    keys, _, pos = cache.extend(k_new, v_new)
    assert torch.equal(keys, torch.cat([k, k_new], dim=2)) and torch.equal(pos[0, 0], torch.arange(6))
    assert torch.equal(cache.positions[0, 0], torch.tensor([0, 3, 4, 5]))


def test_keep_gathers_per_head_and_crop():
    g = torch.Generator().manual_seed(0)
    cache = KVCache(2, 3, 8, 4)
    k, v = _entries(g, 6)
    cache.append(k, v)
    index = torch.tensor([[0, 2, 5], [1, 3, 4], [5, 4, 0]])  # (H, K), a different choice per head
    cache.keep(index)
    assert cache.length == 3
    for h in range(3):
        assert torch.equal(cache.keys[:, h], k[:, h, index[h]])
        assert torch.equal(cache.values[:, h], v[:, h, index[h]])
        assert torch.equal(cache.positions[0, h], index[h])
    cache.append(*_entries(g, 1))  # continues after the largest kept position
    assert torch.equal(cache.positions[0, 0, -1], torch.tensor(6))
    cache.crop(2)
    assert cache.length == 2 and torch.equal(cache.keys[:, 0], k[:, 0, index[0, :2]])
    with pytest.raises(UsageError, match="out of range"):
        cache.keep(torch.tensor([0, 7]))


def test_multi_axis_positions():
    cache = KVCache(1, 2, 5, 4, position_axes=3, position_dtype=torch.float32)
    k, v = _entries(torch.Generator().manual_seed(0), 2, B=1, H=2)
    pos = torch.tensor([[0.0, 1.5, 2.0], [0.0, 1.5, 3.0]])
    cache.append(k, v, pos)
    assert cache.positions.shape == (1, 2, 2, 3) and torch.equal(cache.positions[0, 1], pos)
    with pytest.raises(UsageError, match="multi-axis"):
        cache.append(k, v)


def test_bad_shapes_are_usage_errors():
    cache = KVCache(2, 3, 4, 4)
    with pytest.raises(UsageError, match="expects keys"):
        cache.append(torch.zeros(2, 3, 1, 5), torch.zeros(2, 3, 1, 5))
    with pytest.raises(UsageError, match="sink"):
        KVCache(1, 1, 4, 2, ring=True, sink=4)


def test_shared_positions_are_returned_once_until_heads_differ():
    g = torch.Generator().manual_seed(0)
    cache = KVCache(2, 3, 8, 4)
    cache.append(*_entries(g, 3))
    _, _, pos = cache.extend(*_entries(g, 1))
    assert pos.shape == (1, 1, 4)  # broadcasts over batch and heads: RoPE angles are computed once
    cache.keep(torch.tensor([[0, 1], [1, 2], [0, 3]]))
    _, _, pos = cache.extend(*_entries(g, 1), commit=False)
    assert pos.shape == (2, 3, 3) and pos[0, 1].tolist() == [1, 2, 4]


def test_derived_values_are_dropped_whenever_entries_change():
    g = torch.Generator().manual_seed(0)
    cache = KVCache(2, 3, 8, 4)
    made = []

    def make() -> int:
        made.append(cache.length)
        return cache.length

    cache.append(*_entries(g, 3))
    assert cache.derived("n", make) == 3 and cache.derived("n", make) == 3 and made == [3]
    cache.extend(*_entries(g, 1), commit=False)  # a read: entries unchanged
    assert cache.derived("n", make) == 3 and made == [3]
    changes = [
        lambda: cache.append(*_entries(g, 2)),
        lambda: cache.extend(*_entries(g, 1)),
        lambda: cache.keep(torch.tensor([0, 2, 3])),
        lambda: cache.crop(2),
        cache.reset,
    ]
    for change in changes:
        change()
        assert cache.derived("n", make) == cache.length == made[-1]
    assert made == [3, 5, 6, 3, 2, 0]
