import json

from core_cli import invoke

from genmotion.bench.core import CoreBenchConfig, plot_core_bench, run_core_bench, transformer_forward_flops
from genmotion.cli.bench_core import register
from genmotion.nn import TinyTransformerConfig


def test_quick_core_bench_runs_and_plots(tmp_path):
    results = run_core_bench(CoreBenchConfig.quick())
    assert results["decode"]["max_abs_diff"] < 1e-4
    assert results["decode"]["cached_step_ms"] > 0 and results["matmul_peak"]["gflops"] > 0
    assert set(results["attention"]["ms"]) == {
        "sdpa_causal_flag",
        "sdpa_bool_mask",
        "math_causal_flag",
        "math_bool_mask",
    }
    json.dumps(results)
    plot_core_bench(results, tmp_path / "core.png")
    assert (tmp_path / "core.png").read_bytes()[:4] == b"\x89PNG"


def test_flop_count():
    cfg = TinyTransformerConfig(dim=8, depth=1, heads=2, mlp_ratio=4.0)
    assert transformer_forward_flops(4, cfg, causal=False) == 2 * 4 * (4 * 64 + 2 * 8 * 32) + 4 * 16 * 8


def test_cli_command_writes_json(tmp_path):
    out = tmp_path / "core.json"
    result = invoke(register, ["bench", "core", "--json", str(out), "--quick", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "decode" in result.output and json.loads(out.read_text())["setting"]["threads"] == 1
