"""VAR transformer and sampler: cache == block-causal masked forward, purity, determinism, golden slice."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from image_core_tiny import PATCH_NUMS, TINY_VAE, TINY_VAR, seeded

from genmotion.errors import UsageError
from genmotion.image_core.sampler import sample_images, sample_indices, stream_scales
from genmotion.image_core.var_model import VAR, drop_labels
from genmotion.nn.quantizer import MultiScaleQuantizer
from genmotion.nn.vqvae import VQVAE

K = len(PATCH_NUMS)
SLICES = TINY_VAR.scale_slices


def _full_guided_logits(var, labels, x_BLCv, scale):
    """Block-causal masked forward, with VAR's guidance ramp (official cfg = scale - 1) applied per scale."""
    cfg = scale - 1
    if cfg == 0:
        return var(labels, x_BLCv)
    B = labels.shape[0]
    both = var(torch.cat([labels, torch.full_like(labels, var.num_classes)]), x_BLCv.repeat(2, 1, 1))
    cond, uncond = both[:B], both[B:]
    out = torch.empty_like(cond)
    for si, (b, e) in enumerate(SLICES):
        t = cfg * si / (K - 1)
        out[:, b:e] = (1 + t) * cond[:, b:e] - t * uncond[:, b:e]
    return out


@pytest.mark.parametrize("cfg", [1.0, 2.5])
@pytest.mark.parametrize("variant", [{}, {"shared_aln": True}, {"attn_l2_norm": False}])
def test_cached_sampling_equals_block_causal_forward(cfg, variant):
    var = seeded(VAR, dataclasses.replace(TINY_VAR, **variant))
    q = seeded(MultiScaleQuantizer, TINY_VAE)
    labels = torch.tensor([1, 3, 5])  # 5 = the null class
    seen = []
    record = lambda logits, step: seen.append(logits.clone()) or logits
    idx = sample_indices(
        var, q, labels, generator=torch.Generator().manual_seed(0), guidance_scale=cfg, top_k=1, processors=[record]
    )
    with torch.no_grad():
        full = _full_guided_logits(var, labels, q.idxBl_to_var_input(idx), cfg)
    for si, (b, e) in enumerate(SLICES):
        torch.testing.assert_close(seen[si], full[:, b:e], rtol=1e-5, atol=1e-5)
        assert torch.equal(full[:, b:e].argmax(-1), idx[si]), f"scale {si}"


def test_forward_is_block_causal_by_scale():
    var = seeded(VAR, TINY_VAR)
    g = torch.Generator().manual_seed(0)
    labels, x = torch.tensor([0, 2]), torch.randn(2, TINY_VAR.num_tokens - 1, 4, generator=g)
    x2 = x.clone()
    b, _ = SLICES[2]
    x2[:, b - 1 :] += 1.0  # inputs of scales >= 2 (x has no first-scale slot)
    with torch.no_grad():
        y, y2 = var(labels, x), var(labels, x2)
    torch.testing.assert_close(y[:, :b], y2[:, :b])
    assert not torch.allclose(y[:, b:], y2[:, b:])


def test_model_and_sampler_leave_global_rng_alone_and_repeat_with_the_same_seed():
    var, vae = seeded(VAR, TINY_VAR), seeded(VQVAE, TINY_VAE)
    labels = torch.tensor([1, 2])
    state = torch.get_rng_state()
    a = sample_images(var, vae, labels, generator=torch.Generator().manual_seed(7), top_k=8, top_p=0.9)
    b = sample_images(var, vae, labels, generator=torch.Generator().manual_seed(7), top_k=8, top_p=0.9)
    c = sample_images(var, vae, labels, generator=torch.Generator().manual_seed(8), more_smooth=True)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and a.shape == (2, 3, 8, 8) and 0 <= float(a.min()) and float(a.max()) <= 1
    assert c.shape == a.shape


def test_no_doubled_batch_without_guidance():
    var, q = seeded(VAR, TINY_VAR), seeded(MultiScaleQuantizer, TINY_VAE)
    labels = torch.tensor([1, 2])
    cache = var.new_cache(2)
    steps = list(stream_scales(var, q, labels, generator=torch.Generator(), guidance_scale=1.0, cache=cache))
    assert cache.length == TINY_VAR.num_tokens and len(steps) == K
    assert steps[-1].f_hat.shape == (2, 4, 4, 4)
    with pytest.raises(UsageError, match="rows"):
        next(stream_scales(var, q, labels, generator=torch.Generator(), guidance_scale=2.0, cache=var.new_cache(2)))
    with pytest.raises(UsageError, match="null"):
        next(stream_scales(var, q, torch.tensor([6]), generator=torch.Generator()))


def test_drop_labels_uses_the_generator():
    labels = torch.arange(5).repeat(40)
    a = drop_labels(labels, 5, 0.5, torch.Generator().manual_seed(0))
    b = drop_labels(labels, 5, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and 0 < int((a == 5).sum()) < labels.numel()


def test_official_init_is_drawn_from_the_generator_only():
    a, b = VAR(TINY_VAR), VAR(TINY_VAR)
    state = torch.get_rng_state()
    a.init_weights(generator=torch.Generator().manual_seed(0))
    b.init_weights(generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    gate = a.blocks[0].ada_lin[-1].weight.detach()
    assert float(gate[: 2 * a.C].abs().max()) < 1e-3 < float(gate[2 * a.C :].abs().max())  # gammas start near 0


def test_golden_slice():
    var = seeded(VAR, TINY_VAR)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, TINY_VAR.num_tokens - 1, 4, generator=g)
    with torch.no_grad():
        logits = var(torch.tensor([1, 4]), x)
    assert logits.shape == (2, TINY_VAR.num_tokens, TINY_VAR.vocab_size)
    first = torch.tensor(GOLDEN_FIRST)
    last = torch.tensor(GOLDEN_LAST)
    torch.testing.assert_close(logits.flatten()[:8], first, rtol=1e-4, atol=2e-6)
    torch.testing.assert_close(logits.flatten()[-8:], last, rtol=1e-4, atol=2e-6)


GOLDEN_FIRST = [1.149402, -0.534436, -0.662146, -1.263856, -0.370081, -0.333853, 0.142115, -0.404003]
GOLDEN_LAST = [0.243669, -0.284073, 0.429055, 0.592556, 0.328449, 1.07005, 0.347253, -0.803742]
