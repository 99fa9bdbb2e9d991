import json

import pytest
from core_cli import invoke

from genmotion.cache import (
    FlowCache,
    FlowCacheKV,
    ForcingKV,
    HeadProfile,
    Recompute,
    RollingWindow,
    SharedClean,
    parse_policy,
    policy_names,
)
from genmotion.cli.cache_commands import register
from genmotion.errors import UsageError
from genmotion.kv.naming import PolicyEntry, build_named

PROFILE = HeadProfile(recent_mass=((0.9, 0.1),), static=((True, False),))


def test_names_build_their_policies():
    assert policy_names() == ("recompute", "shared", "rolling", "flowcache-kv", "forcing-kv", "flowcache")
    assert isinstance(parse_policy("recompute"), Recompute)
    assert isinstance(parse_policy("shared", context_frames=4), SharedClean)
    rolling = parse_policy("rolling", sink=2, window=3)
    assert isinstance(rolling, RollingWindow) and (rolling.sink, rolling.window) == (2, 3)
    assert isinstance(parse_policy("flowcache-kv", budget=16), FlowCacheKV)
    assert isinstance(parse_policy("forcing-kv", profile=PROFILE), ForcingKV)
    flowcache = parse_policy(" FlowCache ", thresh=0.02)
    assert isinstance(flowcache, FlowCache) and isinstance(flowcache.context, SharedClean)
    assert flowcache.thresh == 0.02 and flowcache.warmup == 5


def test_compositions_put_flowcache_over_the_kv_policy():
    combo = parse_policy("flowcache+forcing-kv", profile=PROFILE, thresh=0.015, recent=2)
    assert isinstance(combo, FlowCache) and isinstance(combo.context, ForcingKV) and combo.context.recent == 2
    assert isinstance(parse_policy("flowcache-kv+flowcache", budget=8).context, FlowCacheKV)
    assert isinstance(parse_policy("rolling+flowcache").context, RollingWindow)


def test_unknown_names_and_bad_combinations_are_usage_errors():
    with pytest.raises(UsageError) as err:
        parse_policy("teacache")
    assert err.value.exit_code == 2
    for name in policy_names():
        assert name in str(err.value)
    with pytest.raises(UsageError, match="combines"):
        parse_policy("shared+rolling")
    with pytest.raises(UsageError, match="profile"):
        parse_policy("forcing-kv")
    with pytest.raises(UsageError, match="budget"):
        parse_policy("flowcache+flowcache-kv")
    with pytest.raises(UsageError, match="cache policy 'shared' takes no parameter 'thresh'") as err:
        parse_policy("shared", thresh=0.1)
    assert err.value.exit_code == 2 and err.value.fix == "use one of ['context_frames']"
    with pytest.raises(UsageError, match="unknown cache policy 'teacache'") as err:
        parse_policy("flowcache+teacache")
    assert "flowcache+forcing-kv" in err.value.fix


def test_named_tables_share_one_shape():
    """`genmotion.kv.naming`: the lookup every generator's `parse_policy` is built on."""
    table = {"plain": PolicyEntry(Recompute), "needy": PolicyEntry(RollingWindow, required={"window": ("w", "f")})}
    assert isinstance(build_named(table, " Plain ", {}), Recompute)
    with pytest.raises(UsageError, match="unknown cache policy 'other'") as err:
        build_named(table, "other", {})
    assert err.value.fix == "use one of plain | needy"
    with pytest.raises(UsageError, match="cache policy 'plain' takes no parameter 'x'"):
        build_named(table, "plain", {"x": 1})
    with pytest.raises(UsageError, match="^w. f.$"):
        build_named(table, "needy", {"window": None})


def test_profile_heads_command_writes_a_profile(tmp_path):
    out = tmp_path / "heads.json"
    result = invoke(register, ["profile-heads", "--model", "tiny", "-o", str(out), "--chunks", "5", "--steps", "1"])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["model"] == "tiny" and len(data["static"]) == data["num_layers"] and "static" in result.output
    assert HeadProfile.from_dict(data).num_heads == data["num_heads"]
