"""Next-scale KV policies: budgets hold, kept entries are the top-scoring ones, a full budget equals the
full cache exactly; head profiles round-trip through JSON."""

from __future__ import annotations

import pytest
import torch
from image_core_tiny import PATCH_NUMS, TINY_VAE, TINY_VAR, seeded

from genmotion.cache import AttentionProbe, KVCache
from genmotion.errors import InputError, UsageError
from genmotion.image_core.head_cache import HeadGroupCache
from genmotion.image_core.kv_policies import (
    HACK,
    FullKV,
    HACKConfig,
    ScaleKV,
    ScaleKVConfig,
    key_scores,
    observation_rows,
    parse_policy,
    pool_scores,
    spread_order,
    top_entries,
)
from genmotion.image_core.profile import load_head_profile, profile_var_heads, write_head_profile
from genmotion.image_core.sampler import stream_scales
from genmotion.image_core.var_model import VAR
from genmotion.nn.quantizer import MultiScaleQuantizer

LABELS = torch.tensor([0, 3])
CONTEXT = TINY_VAR.num_tokens - PATCH_NUMS[-1] ** 2  # what the last scale reads: 14 entries


def _models():
    return seeded(VAR, TINY_VAR), seeded(MultiScaleQuantizer, TINY_VAE)


def _profile(var):
    types = [
        ["contextual", "structural"] if i % 2 == 0 else ["structural", "structural"] for i in range(len(var.blocks))
    ]
    return {"head_types": types}


class _Watch:
    """Wraps a policy and records every layer/group length after each eviction."""

    def __init__(self, policy):
        self.policy, self.stats, self.lengths = policy, policy.stats, []

    def allocate(self, *args, **kwargs):
        cache = self.policy.allocate(*args, **kwargs)
        self.stats = self.policy.stats
        return cache

    def observation_rows(self, scale_index):
        return self.policy.observation_rows(scale_index)

    def after_scale(self, cache, scale_index, queries):
        self.policy.after_scale(cache, scale_index, queries)
        self.stats = self.policy.stats
        groups = [g for layer in cache for g in (layer.groups if isinstance(layer, HeadGroupCache) else [layer])]
        self.lengths.append([g.length for g in groups])


def _sample(policy, cfg=2.5):
    var, q = _models()
    seen = []
    record = lambda logits, step: seen.append(logits.clone()) or logits
    steps = list(
        stream_scales(var, q, LABELS, generator=torch.Generator().manual_seed(0), guidance_scale=cfg, top_k=1,
                      processors=[record], policy=policy)
    )  # fmt: skip
    return [s.indices for s in steps], seen


@pytest.mark.parametrize("budget", [0.3, 0.6])
def test_scalekv_never_exceeds_its_budgets(budget):
    var, _ = _models()
    policy = ScaleKV(ScaleKVConfig(budget=budget, drafter_fraction=0.5))
    drafter, refiner, drafters = policy.budgets(var)
    assert drafters == 1 and refiner <= drafter <= CONTEXT
    assert drafters * drafter + (len(var.blocks) - drafters) * refiner <= budget * CONTEXT * len(var.blocks)
    watch = _Watch(policy)
    _sample(watch)
    for lengths in watch.lengths[:-1]:  # after every scale but the last, each layer holds <= its budget
        assert max(lengths) <= drafter and sorted(lengths)[0] <= refiner
    assert policy.stats.max_context_bytes < FullKV().stats.max_context_bytes or policy.stats.context_bytes


def test_hack_budgets_are_asymmetric_and_hold():
    var, _ = _models()
    policy = HACK(_profile(var), HACKConfig(budget=0.4, structural_weight=3.0))
    c_budget, s_budget = policy.budgets(var, 1, 1)
    assert c_budget < s_budget <= CONTEXT and c_budget + s_budget <= 0.4 * CONTEXT * 2
    watch = _Watch(policy)
    _sample(watch)
    for lengths in watch.lengths[:-1]:
        assert max(lengths) <= s_budget
    with pytest.raises(UsageError, match="head profile"):
        HACK({"head_types": [["contextual"]]}).allocate(var, 2, dtype=torch.float32, device=torch.device("cpu"))


@pytest.mark.parametrize(
    "make", [lambda v: ScaleKV(ScaleKVConfig(budget=1.0)), lambda v: HACK(_profile(v), HACKConfig(budget=1.0))]
)
def test_full_budget_equals_the_full_cache_exactly(make):
    var, _ = _models()
    full_idx, full_logits = _sample(FullKV())
    idx, logits = _sample(make(var))
    for a, b in zip(full_idx, idx, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(full_logits, logits, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_kept_entries_are_the_top_scoring_ones():
    g = torch.Generator().manual_seed(0)
    cache = KVCache(2, 3, 12, 4)
    cache.append(torch.randn(2, 3, 10, 4, generator=g), torch.randn(2, 3, 10, 4, generator=g))
    queries = torch.randn(2, 3, 5, 4, generator=g)
    scores = pool_scores(key_scores(queries, cache.keys), 3)
    expected_keys = cache.keys.clone()
    keep = top_entries(scores, 4)
    cache.keep(keep)
    assert cache.length == 4
    for b in range(2):
        for h in range(3):
            chosen = set(scores[b, h].topk(4).indices.tolist())
            assert set(keep[b, h].tolist()) == chosen and keep[b, h].tolist() == sorted(chosen)
            assert torch.equal(cache.keys[b, h], expected_keys[b, h, sorted(chosen)])
            assert torch.equal(cache.positions[b, h], torch.tensor(sorted(chosen)))


def test_observation_grid_and_spread_order():
    assert observation_rows(3).tolist() == list(range(9))
    rows = observation_rows(8)
    assert rows.numel() == 16 and rows.unique().numel() == 16
    order = spread_order(4)
    assert sorted(order.tolist()) == list(range(16))
    first = (order < 4).view(4, 4).nonzero()  # the first four picks cover all four quadrants
    assert {(int(y) // 2, int(x) // 2) for y, x in first} == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_parse_policy_names():
    assert isinstance(parse_policy("full"), FullKV)
    scalekv = parse_policy(" ScaleKV ", budget=0.5, pool=3)
    assert isinstance(scalekv, ScaleKV) and scalekv.config == ScaleKVConfig(budget=0.5, pool=3)
    profile = {"head_types": [["contextual", "structural"]]}
    hack = parse_policy("hack", profile=profile, structural_weight=2.0)
    assert isinstance(hack, HACK) and hack.profile is profile and hack.config == HACKConfig(structural_weight=2.0)
    with pytest.raises(UsageError, match="--kv hack needs a head profile") as err:
        parse_policy("hack")
    assert "--head-profile" in err.value.fix
    with pytest.raises(UsageError, match="budget must be in"):
        parse_policy("scalekv", budget=2.0)


def test_parse_policy_refuses_unknown_names_and_parameters():
    with pytest.raises(UsageError, match="unknown cache policy 'lru'") as err:
        parse_policy("lru")
    assert err.value.exit_code == 2 and err.value.fix == "use one of full | scalekv | hack"
    with pytest.raises(UsageError, match="cache policy 'full' takes no parameter 'budget'") as err:
        parse_policy("full", budget=0.5)
    assert err.value.fix == "full takes no parameters: pass none"
    with pytest.raises(UsageError, match="cache policy 'hack' takes no parameter 'pool'") as err:
        parse_policy("hack", profile={}, pool=3)
    assert "'structural_weight'" in err.value.fix


def test_head_profile_round_trip(tmp_path):
    var, q = _models()
    profile = profile_var_heads(var, q, generator=torch.Generator().manual_seed(0), num_samples=2)
    assert profile["num_layers"] == 2 and len(profile["head_types"]) == 2 and len(profile["head_types"][0]) == 2
    assert all(t in ("structural", "contextual") for row in profile["head_types"] for t in row)
    assert len(profile["drafters"]) == len(PATCH_NUMS)
    path = write_head_profile(profile, tmp_path / "heads.json")
    assert load_head_profile(path, var) == profile
    _sample(HACK(load_head_profile(path, var), HACKConfig(budget=0.5)))
    other = seeded(VAR, TINY_VAR.__class__(**{**TINY_VAR.__dict__, "depth": 3}))
    with pytest.raises(InputError, match="not this model"):
        load_head_profile(path, other)


def test_the_attention_probe_reads_the_exact_attention_of_a_var_scale():
    """The one probe (genmotion.cache.AttentionProbe) on VAR: softmax(scaled q @ [history, new] keys) @ values,
    projected, is what the attention layer returned; probing only some rows gives those rows' queries."""
    var, _ = _models()
    conditions = var.class_conditions(LABELS)
    cache = var.new_cache(2)
    outputs = []
    hooks = [b.attn.register_forward_hook(lambda m, a, out: outputs.append(out)) for b in var.typed_blocks()]
    x0 = var.start_tokens(conditions.cond_BD)
    x1 = var.scale_tokens(1, torch.randn(2, 4, TINY_VAR.latent_channels, generator=torch.Generator().manual_seed(1)))
    rows = torch.tensor([0, 3])
    with torch.no_grad():
        var.forward_scale(x0, conditions, cache, positions_l=torch.arange(1))
        outputs.clear()
        with AttentionProbe(var) as full, AttentionProbe(var, rows=rows, snapshot=False) as some:
            var.forward_scale(x1, conditions, cache, positions_l=torch.arange(1, 5))
    for hook in hooks:
        hook.remove()
    assert len(full.calls) == len(some.calls) == len(var.blocks) == len(outputs)
    for call, part, block, out in zip(full.calls, some.calls, var.typed_blocks(), outputs, strict=True):
        assert call.history_k.shape[2] == 1 and part.history_k.shape[2] == 0 and call.cache is part.cache
        keys, values = call.keys(), torch.cat([call.cache.values[:, :, :1], call.v], dim=2)
        attention = torch.softmax(call.scaled_queries() @ keys.transpose(-1, -2), dim=-1)
        B, H, L, D = call.q.shape
        expected = block.attn.proj((attention @ values).transpose(1, 2).reshape(B, L, H * D))
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(part.scaled_queries(), call.scaled_queries()[:, :, rows], rtol=0, atol=1e-6)
        assert torch.equal(part.positions, torch.tensor([1, 4]))
