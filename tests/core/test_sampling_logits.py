import torch

from genmotion.sampling import (
    Sampler,
    force_tokens,
    guidance_schedule,
    guide,
    gumbel_softmax,
    linear_ramp_schedule,
    sample_logits,
    top_k_filter,
    top_p_filter,
)


def _logits(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 5, 50, generator=torch.Generator().manual_seed(seed))


def test_same_generator_seed_same_tokens():
    logits = _logits()
    a = sample_logits(logits, torch.Generator().manual_seed(7), temperature=0.8, top_k=20, top_p=0.9)
    b = sample_logits(logits, torch.Generator().manual_seed(7), temperature=0.8, top_k=20, top_p=0.9)
    c = sample_logits(logits, torch.Generator().manual_seed(8), temperature=0.8, top_k=20, top_p=0.9)
    assert a.shape == (2, 5) and a.dtype == torch.long
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_top_k_one_and_zero_temperature_are_argmax():
    logits = _logits(1)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(sample_logits(logits, g, top_k=1), logits.argmax(-1))
    assert torch.equal(sample_logits(logits, None, temperature=0.0), logits.argmax(-1))
    assert torch.equal(Sampler(top_k=1)(logits, g), logits.argmax(-1))


def test_top_k_keeps_k():
    kept = torch.isfinite(top_k_filter(_logits(2), 7)).sum(-1)
    assert (kept == 7).all()


def test_top_p_keeps_the_nucleus():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().view(1, 1, 4)
    assert torch.isfinite(top_p_filter(logits, 0.7)).view(-1).tolist() == [True, True, False, False]
    assert torch.isfinite(top_p_filter(logits, 0.5)).view(-1).tolist() == [True, False, False, False]
    assert torch.isfinite(top_p_filter(logits, 0.81)).view(-1).tolist() == [True, True, True, False]
    g = torch.Generator().manual_seed(0)
    draws = sample_logits(logits.expand(1, 2000, 4), g, top_p=0.7)
    assert set(draws.unique().tolist()) == {0, 1}


def test_cfg_and_schedules():
    cond, uncond = torch.tensor([2.0]), torch.tensor([1.0])
    assert torch.allclose(guide(cond, uncond, 2.5), uncond + 2.5 * (cond - uncond))
    assert torch.equal(guide(cond, uncond, 1.0), cond)  # 1 = off, for every generator
    ramp = linear_ramp_schedule(5.0)
    assert [ramp(k, 5) for k in range(5)] == [1.0, 2.0, 3.0, 4.0, 5.0]  # VAR's ramp: official cfg 4 = scale 5
    assert guidance_schedule("constant", 2.0)(3, 10) == 2.0


def test_gumbel_softmax_is_seeded_and_normalised():
    logits = _logits(3)
    a = gumbel_softmax(logits, torch.Generator().manual_seed(1), tau=0.5)
    b = gumbel_softmax(logits, torch.Generator().manual_seed(1), tau=0.5)
    assert torch.equal(a, b) and torch.allclose(a.sum(-1), torch.ones(2, 5))
    hard = gumbel_softmax(logits, torch.Generator().manual_seed(1), hard=True)
    assert torch.equal(hard.sum(-1), torch.ones(2, 5)) and set(hard.unique().tolist()) <= {0.0, 1.0}


def test_force_tokens_puts_all_mass_on_the_token_where_the_mask_holds_only():
    logits = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0))
    tokens = torch.tensor([[4, 0, 2], [1, 1, 3]])
    mask = torch.tensor([[True, False, True], [False, False, True]])
    got = force_tokens(logits, tokens, mask)
    for b in range(2):
        for i in range(3):
            if mask[b, i]:
                assert got[b, i, tokens[b, i]] == 0 and torch.isinf(got[b, i]).sum() == 4
                assert int(sample_logits(got[b : b + 1, i : i + 1], None, temperature=1.0)) == int(tokens[b, i])
            else:
                assert torch.equal(got[b, i], logits[b, i])
