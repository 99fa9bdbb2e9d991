"""Scale-Markov VAR variants (HMAR, MVAR) on tiny configs: the block-diagonal masked forward == the cache-free
per-scale path, neighbourhood attention == a dense masked reference, refinement schedules, golden slices,
round trips and the training fine-tune from a VAR."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from image_core_tiny import TINY, TINY_VAE, TINY_VAR, seeded

from genmotion.errors import InputError, UsageError
from genmotion.image_core.config import VARConfig, VARImageConfig
from genmotion.image_core.convert import load_image_model, save_image_model
from genmotion.image_core.markov import check_refine, mask_inputs, masked_counts, own_codes
from genmotion.image_core.model import VARImageModel
from genmotion.image_core.neighbourhood import neighbour_indices, neighbourhood_attention, neighbourhood_mask
from genmotion.image_core.sampler import sample_indices, stream_scales
from genmotion.image_core.var_model import VAR, attention_bias, level_ids
from genmotion.image_core.variants import parse_refine
from genmotion.nn.quantizer import MultiScaleQuantizer

HMAR = dataclasses.replace(TINY_VAR, markov=True, mask_depth=1)
MVAR = dataclasses.replace(TINY_VAR, markov=True, neighbourhood_kernel=3, neighbourhood_from=3)  # the 4x4 map
SLICES = TINY_VAR.scale_slices


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.tensor([1, 3, 5]), torch.randn(3, TINY_VAR.num_tokens - 1, 4, generator=g)  # 5 = null class


# ---- neighbourhood attention ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("side", "kernel"), [(4, 3), (5, 3), (7, 5), (8, 7), (6, 7), (3, 1)])
def test_neighbourhood_attention_equals_a_dense_reference_with_the_window_mask(side, kernel):
    g = torch.Generator().manual_seed(side * 10 + kernel)
    q, k, v = (torch.randn(2, 3, side * side, 8, generator=g) for _ in range(3))
    out = neighbourhood_attention(q, k, v, side=side, kernel=kernel, scale=0.4)
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=neighbourhood_mask(side, kernel), scale=0.4)
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-6)
    if kernel < side:  # the window really restricts: dense attention differs
        assert not torch.allclose(out, F.scaled_dot_product_attention(q, k, v, scale=0.4), atol=1e-3)


def test_windows_shift_inside_the_map_at_borders_as_natten_does():
    side, kernel = 8, 3
    mask = neighbourhood_mask(side, kernel).view(side, side, side, side)
    assert bool((mask.sum((2, 3)) == kernel * kernel).all())  # every query sees exactly kernel^2 keys
    corner = mask[0, 0].nonzero().tolist()
    assert corner == [[r, c] for r in range(3) for c in range(3)]  # (0, 0): rows/cols 0..2, not centred
    centre = mask[4, 5].nonzero().tolist()
    assert centre == [[r, c] for r in (3, 4, 5) for c in (4, 5, 6)]
    edge = mask[7, 3].nonzero().tolist()
    assert edge == [[r, c] for r in (5, 6, 7) for c in (2, 3, 4)]
    assert bool(neighbourhood_mask(6, 7).all())  # a window wider than the map is the whole map
    assert neighbour_indices(8, 7).shape == (64, 49)


# ---- the masks and the cache-free path -------------------------------------------------------------------------
def test_markov_bias_is_block_diagonal_by_scale_with_windows_from_neighbourhood_from():
    bias = attention_bias(MVAR)[0, 0]
    lvl = level_ids(MVAR.patch_nums)[0]
    same = lvl[:, None] == lvl[None, :]
    assert bool(torch.isinf(bias[~same]).all())
    b, e = SLICES[3]
    assert torch.equal(bias[b:e, b:e] == 0, neighbourhood_mask(4, 3))
    b2, e2 = SLICES[2]
    assert bool((bias[b2:e2, b2:e2] == 0).all())  # the 3x3 scale is below neighbourhood_from: dense
    assert bool((attention_bias(TINY_VAR)[0, 0] == 0).sum() > (bias == 0).sum())  # VAR's mask sees more


def _cache_free_logits(var: VAR, labels: torch.Tensor, x: torch.Tensor, *, mask: torch.Tensor | None = None,
                       h: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Each scale run alone through `forward_markov_scale` (the sampling path), concatenated (B, L, V)."""
    conditions = var.class_conditions(labels)
    out = []
    for si, (b, e) in enumerate(SLICES):
        if si == 0:
            tokens = var.start_tokens(conditions.cond_BD)
        elif mask is None:
            tokens = var.scale_tokens(si, x[:, b - 1 : e - 1])
        else:
            assert h is not None
            tokens = var.masked_tokens(x[:, b - 1 : e - 1], h[:, b - 1 : e - 1], mask[:, b - 1 : e - 1])
            tokens = tokens + var.level_positions()[:, b:e]
        out.append(var.forward_markov_scale(tokens, conditions, si, mask=mask is not None))
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("config", [HMAR, MVAR], ids=["hmar", "mvar"])
def test_block_diagonal_full_forward_equals_the_cache_free_scales(config):
    var = seeded(VAR, config)
    labels, x = _inputs()
    with torch.no_grad():
        full, alone = var(labels, x), _cache_free_logits(var, labels, x)
    torch.testing.assert_close(alone, full, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # and the same weights under VAR's block-causal mask give other logits
        var.attn_bias_for_masking.copy_(attention_bias(TINY_VAR))
        assert not torch.allclose(var(labels, x)[:, SLICES[1][0] :], full[:, SLICES[1][0] :], atol=1e-3)


def test_refinement_branch_full_forward_equals_the_cache_free_scales():
    var = seeded(VAR, HMAR)
    labels, x = _inputs()
    g = torch.Generator().manual_seed(3)
    h, masked = torch.randn(x.shape, generator=g), torch.rand(x.shape[:2], generator=g) < 0.5
    with torch.no_grad():
        full = var.forward_mask(labels, x, h, masked)
        alone = _cache_free_logits(var, labels, x, mask=masked, h=h)
    torch.testing.assert_close(alone[:, 1:], full[:, 1:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("config", [HMAR, MVAR], ids=["hmar", "mvar"])
def test_sampled_scale_logits_equal_the_teacher_forced_forward(config):
    var, q = seeded(VAR, config), seeded(MultiScaleQuantizer, TINY_VAE)
    labels, seen = torch.tensor([1, 3]), []
    record = lambda logits, step: seen.append(logits.clone()) or logits
    idx = sample_indices(var, q, labels, generator=torch.Generator().manual_seed(0), guidance_scale=1.0,
                         top_k=1, processors=[record])  # fmt: skip
    with torch.no_grad():
        full = var(labels, q.idxBl_to_var_input(idx))
    for si, (b, e) in enumerate(SLICES):
        torch.testing.assert_close(seen[si], full[:, b:e], rtol=1e-5, atol=1e-5)
        assert torch.equal(idx[si], full[:, b:e].argmax(-1))


# ---- refinement ---------------------------------------------------------------------------------------------------
def test_refine_schedules_parse_and_bad_ones_are_usage_errors():
    assert parse_refine("1,1,2,3") == (1, 1, 2, 3)
    for bad in ("1,x,2", "", "1,,2", "1,0,2", "1,-1"):
        with pytest.raises(UsageError):
            parse_refine(bad)
    hmar, var = seeded(VAR, HMAR), seeded(VAR, MVAR)
    assert check_refine((1, 2, 3, 4), hmar) == (1, 2, 3, 4) and check_refine((), hmar) == ()
    for bad, why in (((1, 2, 2), "3 entries"), ((2, 1, 1, 1), "does not fit"), ((1, 5, 1, 1), "does not fit")):
        with pytest.raises(UsageError, match=why):
            check_refine(bad, hmar)
    with pytest.raises(UsageError, match="no masked-refinement branch"):
        check_refine((1, 2, 1, 1), var)
    assert check_refine((1, 1, 1, 1), var) == (1, 1, 1, 1)  # one pass everywhere needs no branch


def test_masked_counts_decrease_to_zero():
    assert masked_counts(64, 1) == [0]
    assert masked_counts(4, 2) == [2, 0]
    assert masked_counts(9, 3) == [7, 4, 0]


def test_refinement_changes_only_refined_scales_and_repeats_with_a_seed():
    var, q = seeded(VAR, HMAR), seeded(MultiScaleQuantizer, TINY_VAE)
    labels = torch.tensor([0, 2, 4, 1])

    def run(refine, seed=0):
        g = torch.Generator().manual_seed(seed)
        return [s.indices for s in stream_scales(var, q, labels, generator=g, guidance_scale=2.0, refine=refine)]

    one, again = run((1, 1, 1, 1)), run(())
    assert all(torch.equal(a, b) for a, b in zip(one, again, strict=True))
    refined = run((1, 1, 1, 4))
    assert all(torch.equal(a, b) for a, b in zip(one[:3], refined[:3], strict=True))  # same draws before scale 3
    assert not torch.equal(one[3], refined[3])
    assert all(torch.equal(a, b) for a, b in zip(refined, run((1, 1, 1, 4)), strict=True))


def test_var_refuses_refinement_and_markov_refuses_cache_policies():
    q = seeded(MultiScaleQuantizer, TINY_VAE)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(UsageError, match="HMAR"):
        next(stream_scales(seeded(VAR, TINY_VAR), q, torch.tensor([0]), generator=g, refine=(1, 2, 1, 1)))
    from genmotion.image_core.kv_policies import parse_policy

    with pytest.raises(UsageError, match="without a KV cache"):
        next(stream_scales(seeded(VAR, HMAR), q, torch.tensor([0]), generator=g, policy=parse_policy("scalekv")))
    with pytest.raises(ValueError, match="markov"):
        VARConfig(depth=2, head_dim=8, patch_nums=(1, 2), mask_depth=1)
    with pytest.raises(ValueError, match="odd"):
        dataclasses.replace(MVAR, neighbourhood_kernel=4)


def test_mask_inputs_hide_tokens_and_carry_each_scales_own_codes():
    q = seeded(MultiScaleQuantizer, TINY_VAE)
    g = torch.Generator().manual_seed(0)
    indices = [torch.randint(32, (5, p * p), generator=g) for p in TINY_VAE.patch_nums]
    h, masked = mask_inputs(q, indices, torch.Generator().manual_seed(1))
    assert h.shape == (5, TINY_VAR.num_tokens - 1, 4) and masked.shape == h.shape[:2] and masked.dtype == torch.bool
    b, e = SLICES[2]
    torch.testing.assert_close(h[:, b - 1 : e - 1], own_codes(q, 2, indices[2]))
    last = own_codes(q, 3, indices[3])  # the finest scale: phi(code), no resampling
    code = q.embedding(indices[3]).transpose(1, 2).reshape(5, 4, 4, 4)
    torch.testing.assert_close(last, q.phi(3, code).flatten(2).transpose(1, 2))


# ---- golden slices and round trips ---------------------------------------------------------------------------
def test_golden_slices():
    labels, x = _inputs(1)
    hmar, mvar = seeded(VAR, HMAR), seeded(VAR, MVAR)
    g = torch.Generator().manual_seed(2)
    h, masked = torch.randn(x.shape, generator=g), torch.rand(x.shape[:2], generator=g) < 0.5
    with torch.no_grad():
        slices = {
            "hmar": hmar(labels, x).flatten(),
            "hmar_mask": hmar.forward_mask(labels, x, h, masked).flatten(),
            "mvar": mvar(labels, x).flatten(),
        }
    for name, logits in slices.items():
        torch.testing.assert_close(logits[:8], torch.tensor(GOLDEN[name][0]), rtol=1e-4, atol=2e-6, msg=name)
        torch.testing.assert_close(logits[-8:], torch.tensor(GOLDEN[name][1]), rtol=1e-4, atol=2e-6, msg=name)


GOLDEN = {  # the first 8 are the start token, which sees only itself under every mask (VAR's golden start too)
    "hmar": (
        [1.149402, -0.534436, -0.662146, -1.263856, -0.370081, -0.333853, 0.142115, -0.404003],
        [0.01431, -0.31521, -0.035882, 0.750819, -0.17026, 0.918216, -0.13052, 0.191756],
    ),
    "hmar_mask": (
        [-0.456619, -1.06006, 0.791575, -0.85332, 0.533344, -0.282824, 0.640911, 0.184685],
        [-0.661082, 0.989742, -0.830914, -0.677964, -0.126807, 0.090908, -0.120806, 0.180446],
    ),
    "mvar": (
        [1.149402, -0.534436, -0.662146, -1.263856, -0.370081, -0.333853, 0.142115, -0.404003],
        [0.020369, -0.309761, -0.032076, 0.732619, -0.175705, 0.904276, -0.11609, 0.186821],
    ),
}


@pytest.mark.parametrize("config", [HMAR, MVAR], ids=["hmar", "mvar"])
def test_save_load_round_trip(config, tmp_path):
    model = seeded(VARImageModel, VARImageConfig(vae=TINY_VAE, var=config))
    save_image_model(model, tmp_path / "ckpt")
    loaded = load_image_model(tmp_path / "ckpt")
    assert loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    labels, x = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(loaded.var(labels, x), model.var(labels, x))


def test_a_var_mask_in_a_markov_checkpoint_is_refused(tmp_path):
    model = seeded(VARImageModel, VARImageConfig(vae=TINY_VAE, var=HMAR))
    model.var.attn_bias_for_masking.copy_(attention_bias(TINY_VAR))
    save_image_model(model, tmp_path / "ckpt")
    with pytest.raises(InputError, match="scale-Markov mask"):
        load_image_model(tmp_path / "ckpt")


def test_fine_tune_from_var_starts_the_refinement_branch_as_the_last_block(tmp_path):
    from genmotion.image_core.train import VARTask, VARTrainModel

    base = seeded(VARImageModel, TINY)
    save_image_model(base, tmp_path / "var")
    task = VARTask()
    model = task.build_model(VARTrainModel(var=HMAR, init_from=str(tmp_path / "var")))
    var = model.var
    assert torch.equal(var.attn_bias_for_masking, attention_bias(HMAR))
    for key, value in base.var.blocks[-1].state_dict().items():
        assert torch.equal(var.mask_blocks[0].state_dict()[key], value), key
    assert torch.equal(var.mask_head.weight, base.var.head.weight)
    images = torch.rand(4, 3, 8, 8) * 2 - 1
    loss, logs = task.loss(model, (images, torch.tensor([0, 1, 2, 3])))
    assert loss.requires_grad and {"mask_loss", "mask_accuracy", "token_accuracy"} <= set(logs)
    loss.backward()
    assert var.mask_embed.weight.grad is not None and var.mask_blocks[0].attn.mat_qkv.weight.grad is not None
