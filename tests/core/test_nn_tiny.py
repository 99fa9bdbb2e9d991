import torch

from genmotion.cache import KVCache
from genmotion.nn import (
    AdaLNBlock,
    Attention,
    Rotary,
    TinyFlowModel,
    TinyFlowModelConfig,
    TinyTokenModel,
    TinyTransformer,
    TinyTransformerConfig,
    grid_positions_3d,
)


def _model(**kw) -> TinyTransformer:
    torch.manual_seed(0)
    return TinyTransformer(TinyTransformerConfig(dim=32, depth=2, heads=4, **kw)).eval()


def test_incremental_decode_equals_full_forward():
    model = _model()
    x = torch.randn(2, 9, 32, generator=torch.Generator().manual_seed(1))
    pos = torch.arange(9)
    with torch.no_grad():
        full = model(x, pos)
        cache = model.new_cache(2, 16)
        parts = [model(x[:, :4], pos[:4], cache=cache)]  # prefill
        parts += [model(x[:, i : i + 1], pos[i : i + 1], cache=cache) for i in range(4, 7)]  # decode steps
        parts.append(model(x[:, 7:], pos[7:], cache=cache))  # a block of two
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-5)
    assert cache.length == 9


def test_full_forward_with_explicit_mask_equals_causal_flag():
    model = _model()
    x = torch.randn(1, 7, 32, generator=torch.Generator().manual_seed(2))
    pos = torch.arange(7)
    with torch.no_grad():
        assert torch.allclose(model(x, pos), model(x, pos, mask=torch.ones(7, 7, dtype=torch.bool).tril()), atol=1e-6)
        assert not torch.allclose(model(x, pos), model(x, pos, mask=None), atol=1e-3)


def test_read_only_cache_does_not_grow():
    model = _model()
    x = torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(3))
    pos = torch.arange(5)
    with torch.no_grad():
        cache = model.new_cache(1, 8)
        model(x[:, :3], pos[:3], cache=cache)
        out = model(x[:, 3:], pos[3:], cache=cache.read_only())
        assert cache.length == 3
        assert torch.allclose(out, model(x, pos)[:, 3:], atol=1e-5)


def test_token_model_and_adaln_cache_parity():
    torch.manual_seed(0)
    tokens = torch.randint(0, 11, (2, 6))
    model = TinyTokenModel(11, TinyTransformerConfig(dim=16, depth=2, heads=2)).eval()
    with torch.no_grad():
        full = model(tokens, torch.arange(6))
        cache = model.new_cache(2, 6)
        steps = [model(tokens[:, i : i + 1], torch.tensor([i]), cache=cache) for i in range(6)]
    assert full.shape == (2, 6, 11) and torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
    flow = TinyFlowModel(TinyFlowModelConfig(channels=3, tokens_per_frame=2)).eval()
    x, t = torch.randn(1, 6, 3), torch.rand(1, 6)
    frames = torch.arange(6) // 2
    with torch.no_grad():
        full = flow(x, t, frames)
        cache = flow.new_cache(1, 6)
        first = flow(x[:, :4], t[:, :4], frames[:4], cache=cache)
        last = flow(x[:, 4:], t[:, 4:], frames[4:], cache=cache)
    assert torch.allclose(torch.cat([first, last], 1), full, atol=1e-5)


def test_attention_with_3d_rope_and_cache_of_positions():
    torch.manual_seed(0)
    attn = Attention(24, 2).eval()
    rotary = Rotary(12, axes_dims=(4, 4, 4))
    pos = grid_positions_3d(3, 2, 2)  # (12, 3): frames of 2x2 tokens
    x = torch.randn(1, 12, 24)
    with torch.no_grad():
        full = attn(x, pos, rotary)
        cache = KVCache(1, 2, 12, 12, position_axes=3)
        a = attn(x[:, :4], pos[:4], rotary, cache=cache)
        b = attn(x[:, 4:], pos[4:], rotary, cache=cache)
    assert torch.allclose(torch.cat([a, b], 1), full, atol=1e-5)  # "causal" by time: block-causal by frame


def test_adaln_block_modulates():
    torch.manual_seed(0)
    block = AdaLNBlock(16, 2, 8).eval()
    x, rotary = torch.randn(2, 3, 16), Rotary(8)
    with torch.no_grad():
        a = block(x, torch.arange(3), rotary, cond=torch.zeros(2, 8))
        b = block(x, torch.arange(3), rotary, cond=torch.ones(2, 8))
    assert a.shape == x.shape and not torch.allclose(a, b)


def _read_only_reference(attn: Attention, h, pos, rotary, cache):
    """The general attention path (autograd on), which never uses the read-only memo."""
    with torch.enable_grad():
        return attn(h, pos, rotary, cache=cache, commit=False).detach()


def test_read_only_attention_reuses_context_and_matches_general_path():
    torch.manual_seed(0)
    attn, rotary = Attention(32, 4).eval(), Rotary(8, base=100.0)
    g = torch.Generator().manual_seed(4)
    cache = KVCache(2, 4, 12, 8, ring=True, sink=2)
    frames = torch.arange(8).repeat_interleave(2)  # frame positions of 16 tokens, two per frame
    with torch.no_grad():
        for start in range(0, 16, 4):  # commit 4 chunks of 4 tokens: the ring wraps
            x = torch.randn(2, 4, 32, generator=g)
            attn(x, frames[start : start + 4], rotary, cache=cache)
        pos = torch.tensor([8, 8, 9, 9])  # a noisy chunk of two frames: frame-causal inside it
        for step in range(3):  # denoising steps: the context is rotated once, then reused
            h = torch.randn(2, 4, 32, generator=g)
            got = attn(h, pos, rotary, cache=cache, commit=False)
            assert torch.equal(got, _read_only_reference(attn, h, pos, rotary, cache)), step
        assert len(cache._derived) == 1 and cache.length == 12  # one memo, made by the first step
        attn(torch.randn(2, 2, 32, generator=g), torch.tensor([8, 8]), rotary, cache=cache)  # a commit: memo dropped
        assert not cache._derived
        pos = torch.tensor([9, 9, 10, 10])
        h = torch.randn(2, 4, 32, generator=g)
        assert torch.equal(
            attn(h, pos, rotary, cache=cache, commit=False), _read_only_reference(attn, h, pos, rotary, cache)
        )
        h = torch.randn(2, 2, 32, generator=g)  # other positions against the same entries: rebuilt, not stale
        pos = torch.tensor([11, 11])
        assert torch.equal(
            attn(h, pos, rotary, cache=cache, commit=False), _read_only_reference(attn, h, pos, rotary, cache)
        )
