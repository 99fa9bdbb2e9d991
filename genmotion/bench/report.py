"""What every benchmark shares: median timing, atomic JSON, and a PIL bar chart (no matplotlib)."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["bar_chart", "host_info", "run_bench", "save_results", "set_bench_threads", "time_median", "write_json"]

Panel = tuple[str, Mapping[str, float]]


def host_info() -> dict[str, Any]:
    """The CPU model and the vector flags that decide kernel speed (AVX2, AVX-512, bf16, AMX), the machine and
    torch's thread count: what every benchmark JSON records, since times only compare on one host."""
    import platform

    import torch

    name, flags = platform.processor(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                flags = sorted(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "fma") if f in have)
                break
    except OSError:
        pass
    return {"cpu": name, "flags": flags, "machine": platform.machine(), "threads": torch.get_num_threads()}


def set_bench_threads(threads: int) -> None:
    """Apply a bench command's `--threads` (torch intra-op threads for every measurement); < 1 is a usage error."""
    import torch

    from genmotion.errors import UsageError

    if threads < 1:
        raise UsageError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)


def save_results(
    results: Mapping[str, Any],
    json_path: str | Path,
    plot: str | Path | None = None,
    plot_fn: Callable[[Any, Any], object] | None = None,
) -> None:
    """Write a bench's results as JSON and, when `plot` is given, draw them with `plot_fn(results, plot)`."""
    write_json(results, json_path)
    if plot is not None and plot_fn is not None:
        plot_fn(results, plot)


def run_bench(
    run: Callable[[], Mapping[str, Any]],
    threads: int,
    json_path: str | Path,
    plot: str | Path | None = None,
    plot_fn: Callable[[Any, Any], object] | None = None,
) -> Mapping[str, Any]:
    """A bench command's work: its `--threads` applied (`set_bench_threads`), `run()`, the results saved
    (`save_results`: JSON, and the chart when `plot` is given) and returned."""
    set_bench_threads(threads)
    results = run()
    save_results(results, json_path, plot, plot_fn)
    return results


def time_median(fn: Callable[[], object], warmup: int = 1, repeats: int = 3) -> float:
    """Median wall time of `fn()` in seconds after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_json(results: Mapping[str, Any], path: str | Path) -> Path:
    """Write `results` as indented JSON, atomically."""
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(out)
    return out


def bar_chart(panels: Sequence[Panel], path: str | Path, *, width: int = 760, label_width: int = 240) -> Path:
    """Horizontal bar panels, one (title, {label: value}) each, as a PNG written atomically."""
    from PIL import Image, ImageDraw

    row, bar_w = 22, width - label_width - 100
    img = Image.new("RGB", (width, 20 + sum(30 + row * len(bars) for _, bars in panels)), "white")
    draw, y = ImageDraw.Draw(img), 10
    for title, bars in panels:
        draw.text((10, y), title, fill="black")
        y += 20
        top = max(bars.values(), default=1.0) or 1.0
        for name, value in bars.items():
            end = label_width + int(bar_w * value / top)
            draw.text((10, y + 4), name, fill="black")
            draw.rectangle([label_width, y + 3, end, y + row - 3], fill=(70, 110, 180))
            draw.text((end + 6, y + 4), f"{value:.3g}", fill="black")
            y += row
        y += 10
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp.png")
    img.save(tmp)
    tmp.replace(out)
    return out
