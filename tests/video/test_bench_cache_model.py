"""`genmotion bench cache --model <ca2vdm checkpoint>` on a tiny random Ca2-VDM (4 tokens a frame, window 2)."""

import json

import numpy as np
import pytest
import torch
from test_video_pipeline import _FakeEncoder
from video_tiny import tiny_ca2vdm

from genmotion.bench.cache import CacheBenchConfig, run_cache_bench
from genmotion.cache import profile_heads, save_head_profile
from genmotion.cli.app import main
from genmotion.video.ca2vdm.pipeline import PROFILE_NAME, Ca2VDMPipeline


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bench") / "tiny-ca2vdm"
    Ca2VDMPipeline(tiny_ca2vdm(), encoder=_FakeEncoder()).save_pretrained(directory, card="# tiny\n")
    return directory


def test_cli_bench_cache_on_a_checkpoint(ckpt, tmp_path):
    """No head profile beside the weights: the bench profiles the heads itself; the real PromptEncoder encodes."""
    out, png = tmp_path / "cache.json", tmp_path / "cache.png"
    args = ["bench", "cache", "--model", str(ckpt), "--quick", "--lengths", "2,3", "--steps", "3"]
    assert main([*args, "--threads", "1", "--json", str(out), "--plot", str(png)]) == 0
    results = json.loads(out.read_text())
    setting = results["setting"]
    assert setting["exact"].startswith("Recompute(sink=0, window=2)")  # the model's trained FIFO window
    assert setting["policies"]["shared"] == "SharedClean(sink=0, window=2)"
    assert setting["policies"]["rolling"] == "RollingWindow(sink=1, window=1)"
    assert setting["head_profile_source"].startswith("profiled here")
    assert "rolling_window" not in setting and setting["num_steps"] == 3 and setting["curve_chunks"] == 3
    rows = results["lengths"]["3"]
    assert rows["shared"]["max_abs_diff"] <= 1e-5 and results["targets"]["shared_equals_recompute"]["met"]
    assert rows["shared"]["frame_psnr_db"] is None or rows["shared"]["frame_psnr_db"] > 40
    for row in rows.values():
        assert {"frame_psnr_db", "frame_ssim", "mse", "end_to_end_seconds", "frame_discontinuity_ratio"} <= set(row)
        assert row["end_to_end_seconds"] >= row["seconds"] > 0 and -1 <= row["frame_ssim"] <= 1
    flops = results["flop_ideal"]["3"]
    assert flops["recompute_flops"] > flops["shared_flops"] > 0 and flops["forcing_kv_flops"] > 0
    assert flops["forcing_kv_ideal_speedup_vs_shared"] == flops["shared_flops"] / flops["forcing_kv_flops"]
    assert results["targets"]["flowcache_kv_bytes_flat"]["met"]  # a budget of the trained window at any length
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_shipped_head_profile_is_used(ckpt, tmp_path, monkeypatch):
    pipe = Ca2VDMPipeline.from_pretrained(ckpt)
    profile = profile_heads(pipe.flow_model, pipe.frame_layout, generator=torch.Generator().manual_seed(1))
    save_head_profile(profile, ckpt / PROFILE_NAME)
    try:
        monkeypatch.setattr(Ca2VDMPipeline, "condition", lambda self, p: self.model.text_condition(torch.ones(1, 384)))
        cfg = CacheBenchConfig.for_model(
            str(ckpt), quick=True, lengths=(2,), num_steps=2, thresholds=(0.0,), error_thresholds=(0.0,)
        )
        results = run_cache_bench(cfg)
    finally:
        (ckpt / PROFILE_NAME).unlink()
    assert results["setting"]["head_profile_source"].startswith("shipped")
    assert results["head_profile"]["static"] == [list(row) for row in profile.static]
    curve = results["threshold_curve"]
    assert [c["skipped_fraction"] for c in curve] == [0.0, 0.0, 0.0]  # thresh 0 (every variant): exact
    assert all(c["frame_psnr_db"] is None for c in curve)
    assert np.isfinite(results["lengths"]["2"]["forcing-kv"]["frame_ssim"])
