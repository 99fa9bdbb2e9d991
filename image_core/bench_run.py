"""`genmotion bench image`: the image measurements side by side in one process, fixed threads, medians.

Parts (`--parts a,b,...`, default all; the JSON is updated part by part, so re-running one part keeps the rest):

* `peak_gflops`: fp32 and bf16 matmul GFLOP/s of this machine, the yardstick of `speed`;
* `parity`: cached sampling == the block-causal masked forward (tokens with top-k = 1, guidance on);
* `speed`: VAR-d16 at 256 px with random official-layout weights against the official way of running it;
* `var_toy`: share of var-toy samples the toy-world detector reads as the requested class;
* `nfig`: the same for nfig-toy (VAR with next-frequency tokenizer scales);
* `kv`: ScaleKV and HACK cache bytes and PSNR against the full cache on var-toy;
* `tts`: TTS-VAR with 8 candidates against best-of-1 and best-of-8 at the shipped guidance, 2 and 1;
* `flexvar`: flexvar-toy's class accuracy at 3 step counts, at the trained 32 px and the unseen 48 px;
* `m_var`: m-var-toy's class accuracy (a table row), and the inter-scale cost of M-VAR's carried scan state against
  re-running the scan and VAR's attention over the KV cache, seconds per scale over 16 equal scales (with `--plot`,
  drawn beside the chart as `<plot>_m_var_scales.png`);
* `flowar`: share of flowar-toy samples read as the requested class (shipped settings, 4 Euler steps per
  scale, no guidance).
* `hmar`, `mvar`: hmar-toy (one pass per scale and with masked refinement) and mvar-toy: class accuracy, and peak
  tensor memory of sampling 64 images against var-toy (`genmotion.image_core.bench_markov`);
* `watermark`: LBW detection rates at 1 % false positives on 200 watermarked (soft and hard) and 200 plain
  images, clean and after JPEG 75, 0.5x resize, a crop and noise, with the class accuracy of each set; also what
  the exact sampled latent and decoder inversion read back (`genmotion.image_core.watermark_bench`).

Every part that measures a model's class accuracy also adds rows to `table` (model, setting, accuracy, tokens,
seconds per image, peak bytes): the one table every VAR-family variant is read from. `--quick` shrinks every
part (a smoke test, not a measurement).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genmotion.bench.core import matmul_peak
from genmotion.bench.report import bar_chart, write_json
from genmotion.errors import UsageError

__all__ = ["PARTS", "BenchRun", "parse_parts", "run_image_bench", "table_row"]


@dataclass
class BenchRun:
    """What the parts share: the flags, the results so far, and each loaded pipeline (loaded once)."""

    quick: bool
    threads: int
    ckpt: str
    results: dict[str, Any]
    _pipes: dict[str, Any] = field(default_factory=dict)

    def pipe(self, name: str | None = None) -> Any:
        """The pipeline of registry name or folder `name` (default: `--ckpt`), loaded on first use."""
        import genmotion

        key = name or self.ckpt
        if key not in self._pipes:
            self._pipes[key] = genmotion.load(key)
        return self._pipes[key]

    def random_models(self) -> Any:
        """(VAR, VQVAE, name) with random official-layout weights (VAR-d16, or the small quick pair), built once
        for the parts that share them (parity, speed)."""
        from genmotion.image_core.bench import random_models

        if "random" not in self._pipes:
            self._pipes["random"] = random_models(self.quick)
        return self._pipes["random"]

    def peak(self) -> dict[str, Any]:
        """fp32/bf16 matmul GFLOP/s of this machine, measured once per run (the yardstick `speed` is read
        against, so both come from the same run), recorded as `peak_gflops`."""
        if "peak" not in self._pipes:
            self._pipes["peak"] = _peak(self)
        return dict(self._pipes["peak"])


def table_row(model: str, setting: str, labels: list[int], images: np.ndarray, *, tokens: int, seconds: float,
              peak_bytes: int | None = None) -> dict[str, Any]:  # fmt: skip
    """One row of the variants table: class accuracy of `images` (N, H, W, 3) uint8 read by the toy-world
    detector against `labels`, with what they cost (`tokens` transformer tokens per image, wall seconds per
    image, peak bytes of the sampling when measured)."""
    from genmotion.image_core.data import classify_toy_images

    read = classify_toy_images(torch.from_numpy(images))
    return {
        "model": model,
        "setting": setting,
        "samples": len(labels),
        "class_accuracy": float(np.mean([r == t for r, t in zip(read, labels, strict=True)])),
        "tokens_per_image": tokens,
        "seconds_per_image": seconds / max(1, len(labels)),
        "peak_bytes": peak_bytes,
    }


# ---- the parts ---------------------------------------------------------------------------------------
def _peak(run: BenchRun) -> dict[str, Any]:
    n = 1024 if run.quick else 2048
    return {
        "fp32": matmul_peak(n)["gflops"],
        "bf16": matmul_peak(n // 2 if run.quick else n, repeats=3, dtype=torch.bfloat16)["gflops"],
    }


def _parity(run: BenchRun) -> dict[str, Any]:
    from genmotion.image_core.bench import cache_parity

    var, vae, name = run.random_models()
    return {"model": name, **cache_parity(var, vae.quantize)}


def _speed(run: BenchRun) -> dict[str, Any]:
    from genmotion.image_core.bench import speed

    measured = run.peak()
    run.results["peak_gflops"] = measured
    peak, bf16_peak = float(measured["fp32"]), float(measured["bf16"])
    var, vae, name = run.random_models()
    # bf16 autocast only where bf16 matrix products are at least half as fast as fp32 (CPUs without bf16
    # instructions run them ~20x slower: a d16 run would take many minutes and show nothing new).
    bf16_useful = bf16_peak >= 0.5 * peak
    out = {"model": name, **speed(var, vae, 1 if run.quick else 3, peak, with_bf16=bf16_useful and not run.quick)}
    if not bf16_useful:
        out["bf16"] = {
            "skipped": f"bf16 matmul runs at {bf16_peak:.1f} GFLOP/s here vs {peak:.1f} fp32: "
            "no bf16 hardware, so bf16 is a storage format only on this CPU"
        }
    return out


def _var_toy(run: BenchRun, name: str | None = None) -> dict[str, Any]:
    from genmotion.image_core.bench import toy_accuracy

    pipe = run.pipe(name)
    start = time.perf_counter()
    out = toy_accuracy(pipe, 2 if run.quick else 20)
    seconds = time.perf_counter() - start
    tokens = sum(p * p for p in pipe.config.var.patch_nums)
    out["rows"] = [{
        "model": name or run.ckpt, "setting": f"guidance {pipe.sampling.guidance_scale:g}", "samples": out["samples"],
        "class_accuracy": out["class_accuracy"], "tokens_per_image": tokens,
        "seconds_per_image": seconds / out["samples"], "peak_bytes": None,
    }]  # fmt: skip
    return out


def _kv(run: BenchRun) -> dict[str, Any]:
    from genmotion.image_core.bench import kv_policies

    return kv_policies(run.pipe(), 12 if run.quick else 48, 0.25)


def _tts(run: BenchRun) -> dict[str, Any]:
    from genmotion.image_core.bench import tts_accuracy

    guidances = (None,) if run.quick else (None, 2.0, 1.0)  # None: the checkpoint's
    return {"runs": [tts_accuracy(run.pipe(), 12 if run.quick else 192, guidance_scale=g) for g in guidances]}


# flexvar-toy: (image size, steps) per row; 32 px is the trained size, 48 px (a 12 x 12 latent) is never seen.
_FLEXVAR_SETTINGS = ((32, 3), (32, 6), (32, 8), (48, 3), (48, 7), (48, 10))


def _flexvar(run: BenchRun) -> dict[str, Any]:
    pipe = run.pipe("flexvar-toy")
    per_class = 2 if run.quick else 20
    labels = [i % pipe.num_classes for i in range(per_class * pipe.num_classes)]
    rows = []
    for size, steps in _FLEXVAR_SETTINGS:
        sizes = pipe.schedule(num_steps=steps, image_size=size)
        start = time.perf_counter()
        images = pipe.generate(labels, num_images=len(labels), seed=0, schedule=sizes, image_size=size).images
        seconds = time.perf_counter() - start
        setting = f"{size} px, {steps} steps ({','.join(map(str, sizes))})"
        rows.append(table_row("flexvar-toy", setting, labels, images, tokens=sum(s * s for s in sizes),
                              seconds=seconds))  # fmt: skip
    return {"trained_size": pipe.height, "sampling": dict(vars(pipe.sampling)), "rows": rows}


def _m_var(run: BenchRun) -> dict[str, Any]:
    from genmotion.image_core.mamba_var_bench import inter_scale_cost, mvar_accuracy

    out = mvar_accuracy(run.pipe("m-var-toy"), 2 if run.quick else 20)
    out["inter_scale"] = inter_scale_cost(quick=run.quick)
    return out


def _flowar(run: BenchRun) -> dict[str, Any]:
    from genmotion.image_core.flowar_bench import flowar_accuracy

    return flowar_accuracy(run.pipe("flowar-toy"), 2 if run.quick else 20, quick=run.quick)


def _hmar(run: BenchRun) -> dict[str, Any]:
    from genmotion.image_core.bench_markov import hmar_bench

    return hmar_bench(run)


def _mvar(run: BenchRun) -> dict[str, Any]:
    from genmotion.image_core.bench_markov import mvar_bench

    return mvar_bench(run)


def _watermark(run: BenchRun) -> dict[str, Any]:
    from genmotion.image_core.watermark_bench import watermark_robustness

    return watermark_robustness(run.pipe(), 24 if run.quick else 200, model=run.ckpt)


PARTS: dict[str, Callable[[BenchRun], dict[str, Any]]] = {
    "peak_gflops": lambda run: run.peak(),
    "parity": _parity,
    "speed": _speed,
    "var_toy": _var_toy,
    "nfig": lambda run: _var_toy(run, "nfig-toy"),  # NFIG: kind var with cosine-band tokenizer scales
    "kv": _kv,
    "tts": _tts,
    "flexvar": _flexvar,
    "m_var": _m_var,
    "flowar": _flowar,
    "hmar": _hmar,
    "mvar": _mvar,
    "watermark": _watermark,
}


def parse_parts(text: str | None) -> list[str]:
    """`--parts a,b` -> ["a", "b"] in PARTS order (None or "" -> all); an unknown name is a UsageError."""
    if not text:
        return list(PARTS)
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in PARTS]
    if unknown or not names:
        raise UsageError(f"--parts: unknown part(s) {', '.join(unknown) or repr(text)}; choose from {', '.join(PARTS)}")
    return [n for n in PARTS if n in names]


# ---- the whole run ----------------------------------------------------------------------------------------
def run_image_bench(
    json_path: Path, plot: Path | None, *, quick: bool, threads: int, ckpt: str, parts: list[str] | None = None
) -> dict[str, Any]:
    """Run `parts` (default all) and merge them into the results already in `json_path` (when it holds a run of
    the same `quick` setting), then rebuild the table, write the JSON and the chart, print a summary."""
    import json

    import typer

    torch.set_num_threads(threads)
    results: dict[str, Any] = {}
    if json_path.is_file():
        try:
            old = json.loads(json_path.read_text())
        except (OSError, ValueError):
            old = {}
        if isinstance(old, dict) and old.get("quick") == quick:
            results = old
    results.update(
        machine={"processor": platform.processor() or platform.machine(), "threads": threads,
                 "torch": torch.__version__},
        quick=quick,
    )  # fmt: skip
    run = BenchRun(quick=quick, threads=threads, ckpt=ckpt, results=results)
    for name in parts or list(PARTS):
        typer.echo(f"bench image: {name} ...", err=True)
        results[name] = PARTS[name](run)
    results["table"] = [row for name in PARTS if isinstance(results.get(name), dict)
                        for row in results[name].get("rows", [])]  # fmt: skip
    write_json(results, json_path)
    if plot is not None:
        _plot(results, plot)
    typer.echo(summary(results))
    return results


_TTS_RUNS = (("best_of_1", "best-of-1"), ("tts", "TTS-VAR"), ("best_of_n", "best-of-N"))


def _plot(r: dict[str, Any], path: Path) -> None:
    panels: list[tuple[str, dict[str, float]]] = []
    if "speed" in r:
        s = r["speed"]
        panels.append((f"seconds ({s.get('model', r.get('model'))}, batch 1)", {
            "transformer (ours)": s["transformer_s"], "transformer (official way)": s["official_style_transformer_s"],
            "decode": s["decode_s"]}))  # fmt: skip
    if "speed" in r and "peak_gflops" in r:
        s, p = r["speed"], r["peak_gflops"]
        panels.append((f"GFLOP/s ({r['machine']['threads']} threads)", {
            "fp32 matmul peak": p["fp32"], "bf16 matmul peak": p["bf16"], "transformer": s["transformer_gflops"],
            "decode": s["decode_gflops"]}))  # fmt: skip
    if "kv" in r:
        kv, policies = r["kv"], ("full", "scalekv", "hack")
        panels.append(("KV context bytes vs full (var-toy)", {k: kv[k]["context_bytes_vs_full"] for k in policies}))
        psnr = {k: min(kv[k]["psnr_vs_full_db"], 60.0) for k in policies[1:]}
        panels.append(("PSNR vs full cache, dB (var-toy)", psnr))
    if r.get("table"):
        panels.append(("class accuracy (toy-world detector)",
                       {f"{row['model']} {row['setting']}": row["class_accuracy"] for row in r["table"]}))  # fmt: skip
    if "tts" in r:
        t = r["tts"]["runs"][0]
        panels.append((f"var-toy class accuracy, guidance {t['guidance_scale']:g}",
                       {name: t[key]["class_accuracy"] for key, name in _TTS_RUNS}))  # fmt: skip
    if panels:
        bar_chart(panels, path)
    if "m_var" in r:
        from genmotion.image_core.mamba_var_bench import line_chart

        cost = r["m_var"]["inter_scale"]
        panels = [(f"one layer, time per scale ({cost['setting']})", cost["layer_seconds_per_scale"]),
                  ("one block, time per scale (same scales)", cost["block_seconds_per_scale"])]  # fmt: skip
        line_chart(panels, path.with_name(f"{path.stem}_m_var_scales.png"), x_label="scale index")


def summary(r: dict[str, Any]) -> str:
    """A few lines for the terminal: the headline of each part present, then the table."""
    lines = []
    if "parity" in r:
        lines.append(f"parity {'ok' if r['parity']['tokens_identical'] else 'MISMATCH'}")
    if "speed" in r:
        s = r["speed"]
        ours = f"transformer {s['transformer_s']:.2f}s ({s['transformer_peak_fraction']:.0%} of peak)"
        lines.append(f"{s.get('model', r.get('model'))}: {ours} vs official way "
                     f"{s['official_style_transformer_s']:.2f}s, decode {s['decode_s']:.2f}s")  # fmt: skip
    if "kv" in r:
        kv = {k: f"{r['kv'][k]['context_bytes_vs_full']:.0%} bytes @ {r['kv'][k]['psnr_vs_full_db']:.1f} dB"
              for k in ("scalekv", "hack")}  # fmt: skip
        lines.append(f"ScaleKV {kv['scalekv']}, HACK {kv['hack']}")
    for t in r.get("tts", {}).get("runs", []):
        b, s = t["best_of_1"], t["tts"]
        head = f"TTS-VAR x{t['candidates']} (guidance {t['guidance_scale']:g}, {t['prompts']} prompts)"
        lines.append(f"{head} {s['class_accuracy']:.1%} vs {b['class_accuracy']:.1%} "
                     f"at {s['seconds_vs_best_of_1']:.1f}x the time")  # fmt: skip
    if "m_var" in r:
        fit = r["m_var"]["inter_scale"]["fit"]
        growth = ", ".join(f"{k} {v['last_quarter_vs_first_quarter']:.2f}x" for k, v in fit.items())
        lines.append(f"time per scale, last quarter of the scales vs first: {growth}")
    for name in ("hmar", "mvar"):
        if isinstance(r.get(name), dict) and "memory" in r[name]:
            m = r[name]["memory"]
            lines.append(f"{name}: sampling peak {m['model']['peak_bytes'] / 2**20:.1f} MiB vs var-toy "
                         f"{m['var']['peak_bytes'] / 2**20:.1f} MiB ({m['var_peak_vs_model']:.2f}x lower, "
                         f"batch {m['var']['batch']})")  # fmt: skip
    for mode in ("soft", "hard"):
        if mode in r.get("watermark", {}):
            w = r["watermark"][mode]["attacks"]
            rates = ", ".join(f"{k} {v['detection_at_empirical']:.0%}" for k, v in w.items())
            lines.append(f"LBW {mode}: detection at 1% FPR {rates}")
            inverted = r["watermark"][mode].get("decoder_inversion", {}).get("attacks", {})
            if inverted:
                rates = ", ".join(f"{k} {v['detection_at_empirical']:.0%}" for k, v in inverted.items())
                lines.append(f"LBW {mode}, decoder inversion: detection at 1% FPR {rates}")
    for row in r.get("table", []):
        peak = f", peak {row['peak_bytes'] / 2**20:.1f} MiB" if row.get("peak_bytes") else ""
        cost = f"{row['tokens_per_image']} tokens, {row['seconds_per_image'] * 1000:.0f} ms/image{peak}"
        lines.append(f"{row['model']:>12} {row['setting']:<24} accuracy {row['class_accuracy']:6.1%}  {cost}")
    return "\n".join(lines)
