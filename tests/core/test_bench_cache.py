import json
import math

import numpy as np
import pytest
import torch
from core_cli import invoke

import genmotion.bench.cache as bench_cache
from genmotion.bench.cache import (
    CacheBenchConfig,
    chunk_discontinuity,
    flow_model_flops,
    latent_fidelity,
    plot_cache_bench,
    policy_flops,
    run_cache_bench,
    seeded_tiny_flow_model,
    temporal_flicker,
)
from genmotion.bench.cache_metrics import frame_fidelity, ssim
from genmotion.bench.cache_subject import describe_policy
from genmotion.cache import FrameLayout, parse_policy
from genmotion.cli.cache_commands import register
from genmotion.errors import UsageError

MICRO = CacheBenchConfig(
    tokens_per_frame=6,
    channels=3,
    dim=16,
    heads=2,
    num_steps=5,  # the error rule's first possible skip is the fourth evaluation
    lengths=(2, 3),
    curve_chunks=2,
    thresholds=(0.0, 1e9),
    warmup=1,
    error_thresholds=(0.0, 1e9),
    error_warmup=0,
    rolling_window=2,
    fit_steps=2,
    fit_batch=2,
    fit_frames=4,
    profile_chunks=4,
    repeats=1,
)


def test_metrics_on_constructed_latents():
    frames = torch.zeros(1, 6, 2, 1)
    frames[:, 2:4] = 1.0  # chunks of 2 frames: the jumps sit at chunk boundaries 2 and 4
    assert temporal_flicker(frames, 0.0, 1.0) == pytest.approx(1 - 2 / 5 / 1)
    assert chunk_discontinuity(frames, 2) == pytest.approx((1.0) / (2 / 5))
    smooth = torch.arange(6.0).view(1, 6, 1, 1).expand(1, 6, 2, 1)
    assert chunk_discontinuity(smooth, 2) == pytest.approx(1.0)
    exact = torch.linspace(0, 1, 10).view(1, 10, 1, 1)
    same = latent_fidelity(exact, exact)
    assert same["mse"] == 0.0 and same["psnr_db"] is None
    shifted = exact.clone()
    shifted[:, 1:9] += 0.1  # inside the exact range: mse 0.008 on [0, 1]
    assert latent_fidelity(shifted, exact)["psnr_db"] == pytest.approx(10 * math.log10(1 / 0.008), abs=1e-3)


def test_flop_counts():
    cfg = MICRO.model_config
    layout = FrameLayout(tokens_per_frame=2, channels=3, frames_per_chunk=1)
    assert flow_model_flops(cfg, 4, 0) * 2 == flow_model_flops(cfg, 8, 0)
    one = policy_flops(cfg, layout, chunks=1, steps=2, prefix_frames=0, shared=True)
    assert one == policy_flops(cfg, layout, chunks=1, steps=2, prefix_frames=0, shared=False)  # nothing to share yet
    recompute = policy_flops(cfg, layout, chunks=8, steps=4, prefix_frames=1, shared=False)
    assert recompute > 2 * policy_flops(cfg, layout, chunks=8, steps=4, prefix_frames=1, shared=True)


def test_seeded_model_depends_only_on_the_seed():
    a, b = (seeded_tiny_flow_model(MICRO.model_config, 3) for _ in range(2))
    c = seeded_tiny_flow_model(MICRO.model_config, 4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.proj_in.weight, c.proj_in.weight)


def test_micro_bench_reports_every_policy_and_target(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = run_cache_bench(MICRO)
    finally:
        torch.set_num_threads(threads)
    json.dumps(results, allow_nan=False)
    rows = results["lengths"]["3"]
    assert {"recompute", "shared", "rolling", "flowcache", "flowcache-kv", "forcing-kv"} <= set(rows)
    assert {"flowcache+forcing-kv", "flowcache+flowcache-kv", "rolling@forcing-kv-bytes"} <= set(rows)
    assert rows["flowcache-kv@denoising"]["peak_cache_bytes"] == rows["flowcache-kv"]["peak_cache_bytes"]
    denoising = results["targets"]["flowcache_kv_psnr_vs_rolling_equal_bytes"]["queries=denoising"]
    assert set(denoising) == {"2", "3"}
    assert rows["shared"]["max_abs_diff"] <= 1e-5 and results["targets"]["shared_equals_recompute"]["met"]
    same = results["shared_vs_recompute_same_context"]
    assert same["max_abs_diff"] <= 1e-5 and len(same["chunks_after_context"]) >= 2
    curve = [(c["rule"], c["order"], c["thresh"], c["skipped_fraction"] > 0) for c in results["threshold_curve"]]
    assert curve == [
        ("input", 0, 0.0, False),
        ("input", 0, 1e9, True),
        ("input", 1, 0.0, False),
        ("input", 1, 1e9, True),
        ("error", 1, 0.0, False),
        ("error", 1, 1e9, True),
    ]
    point = results["operating_point"]
    assert (point["rule"], point["order"], point["thresh"]) in {(r, o, t) for r, o, t, _ in curve}
    assert results["flop_ideal"]["3"]["ideal_speedup"] > 1.0
    assert all({"value", "target", "met"} <= set(t) for t in results["targets"].values())
    variants = results["targets"]["flowcache_speedup_vs_shared_at_psnr30"]["by_variant"]
    assert set(variants) == {"reuse", "forecast", "forecast, error rule"}
    assert not math.isnan(rows["forcing-kv"]["discontinuity_ratio"])
    plot_cache_bench(results, tmp_path / "cache.png")
    assert (tmp_path / "cache.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_bench_command_writes_json(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_cache.CacheBenchConfig, "quick", classmethod(lambda cls: MICRO))
    out = tmp_path / "cache.json"
    result = invoke(register, ["bench", "cache", "--json", str(out), "--quick", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "targets met" in result.output and json.loads(out.read_text())["setting"]["threads"] == 1


def test_frame_metrics_and_ssim():
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    assert ssim(video, video) == pytest.approx(1.0)
    noisy = np.clip(video.astype(int) + rng.integers(-40, 41, video.shape), 0, 255).astype(np.uint8)
    assert 0.0 < ssim(noisy, video) < 0.99
    a, b = np.full((1, 8, 8, 3), 100, np.uint8), np.full((1, 8, 8, 3), 120, np.uint8)  # luminance term only
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b) == pytest.approx((2 * 100 * 120 + c1) / (100**2 + 120**2 + c1))
    same = frame_fidelity(video, video, 2)
    assert same["frame_psnr_db"] is None and same["frame_mse"] == 0.0
    worse = frame_fidelity(noisy, video, 2)
    assert 10 < worse["frame_psnr_db"] < 30 and 0 <= worse["frame_flicker"] <= 1


def test_config_for_a_model():
    assert CacheBenchConfig.for_model() == CacheBenchConfig()
    quick = CacheBenchConfig.for_model("ca2vdm-toy", quick=True)
    assert quick.model == "ca2vdm-toy" and quick.lengths == (4, 8) and quick.curve_chunks == 8
    short = CacheBenchConfig.for_model("tiny", lengths=(2, 4), num_steps=None)
    assert short.lengths == (2, 4) and short.curve_chunks == 4 and short.num_steps == 24


def test_describe_policy_names_the_settings_that_matter():
    policy = parse_policy("flowcache+rolling", rule="error", thresh=0.1, order=1, sink=1, window=3)
    text = describe_policy(policy)
    assert text == "FlowCache(thresh=0.1, warmup=5, order=1, rule=error, context=RollingWindow(sink=1, window=3))"
    kv = describe_policy(parse_policy("flowcache-kv", budget=64, queries="denoising"))
    assert kv == "FlowCacheKV(sink=0, window=None, budget=64, queries=denoising)"


def test_corrected_variant_joins_the_curve_when_given_thresholds():
    assert all(not s["correct"] for s in bench_cache._curve_grid(MICRO))  # none by default
    cfg = CacheBenchConfig.for_model(corrected_thresholds=(0.1, 0.2), curve_chunks=8)
    corrected = [s for s in bench_cache._curve_grid(cfg) if s["correct"]]
    assert (
        corrected == [{"rule": "error", "order": 0, "warmup": 2, "thresh": t, "correct": True} for t in (0.1, 0.2)]
        and cfg.curve_chunks == 8
    )
    assert bench_cache._variant(corrected[0]) == "reuse, error rule, corrected"
    assert bench_cache._variant({"rule": "error", "order": 1}) == "forecast, error rule"  # a row of an older file


@pytest.mark.parametrize(
    "flag", [["--corrected", "0.1,x"], ["--corrected", "-1"], ["--curve-chunks", "0"], ["--steps", "0"]]
)
def test_cli_bench_cache_checks_the_curve_flags(tmp_path, flag):
    result = invoke(register, ["bench", "cache", "--json", str(tmp_path / "c.json"), "--quick", *flag])
    assert isinstance(result.exception, UsageError) and not (tmp_path / "c.json").exists()
