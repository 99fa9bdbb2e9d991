"""`genmotion bench video`: quality and speed of a video pipeline (VideoAR or Ca2-VDM), side by side in one process.

Quality (toy-world detector): adherence on held-out paraphrases x seeds, two-object prompts, flicker,
drift (first vs last 16 frames of 256-frame runs), prompt-switch adherence. How the clips look (`quality`):
the toy-world FVD and object statistics against ground truth of the same prompts, with the floor (ground truth
of other seeds) and ceilings (shuffled, frozen frames), the diagnosis rows (tokenizer alone, teacher-forced,
first frame vs later, sampling settings) and a frame strip (ground truth above generated, 8 fixed prompts;
drawn beside the chart as `<plot>_strip.png`). Speed: time to first frame,
frames/s with and without decoding, cache bytes against frame count, achieved GFLOP/s of the frame
loop against the machine's matmul peak. Threads are fixed by the caller.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genmotion.bench.core import matmul_peak
from genmotion.bench.report import bar_chart, host_info
from genmotion.pipeline import FlowPolicyHost
from genmotion.video.evaluate import (
    ATTRIBUTES,
    CEILING_ATTRIBUTES,
    adherence_details,
    adherence_summary,
    balanced_prompts,
    eval_prompts,
    score_frames,
    switch_prompts,
    text_ceiling,
    train_template_prompts,
)
from genmotion.video.quality_bench import plot_strip, quality_line, quality_panels, run_quality
from genmotion.video.videoar.sampler import stream_latents

__all__ = ["BenchSettings", "cli_cold_start", "frame_flops", "plot_video_bench", "run_video_bench", "summary_line"]


@dataclass(frozen=True, kw_only=True)
class BenchSettings:
    """Sizes of the video benchmark; the defaults are the reported setting, `quick()` a smoke test."""

    prompts: int = 96  # one-object held-out prompts: 12 per colour and per motion, 32 per shape
    seeds: tuple[int, ...] = (0, 1)
    num_frames: int = 16
    two_object_prompts: int = 12
    drift_prompts: int = 24  # one prompt is ~4 points: 8 (before 2026-11-25) could not resolve a 5-point target
    drift_frames: int = 256
    switch_prompts: int = 12
    switch_frame: int = 16
    switch_delay: int = 8
    speed_frames: int = 64
    repeats: int = 5
    guidance_scale: float | None = None  # None: the checkpoint's recommended sampling (videoar-toy: 2, frame 0 1.5)
    probe_captions: int = 2000
    fvd_clips: int = 256  # clips per set in the toy-world FVD (generated, reference and floor each)
    diagnosis_clips: int = 128  # the first of those prompts, for every diagnosis row
    sweep: bool = True  # the sampling-settings rows of the diagnosis
    held_out_clips: int = 128  # the same specs in held-out paraphrases: their own FVD
    long_clips: int = 64  # long clips (the first of the FVD prompts): first vs last 16 frames against ground truth
    long_frames: int = 256

    @property
    def sampling(self) -> dict[str, float]:
        """The guidance keywords of every generation: none (the checkpoint's recommendation) or the one scale."""
        return {} if self.guidance_scale is None else {"guidance_scale": self.guidance_scale}

    @classmethod
    def quick(cls) -> BenchSettings:
        return cls(
            prompts=2, seeds=(0,), num_frames=8, two_object_prompts=1, drift_prompts=1, drift_frames=24,
            switch_prompts=1, switch_frame=4, switch_delay=2, speed_frames=8, repeats=1, probe_captions=64,
            fvd_clips=6, diagnosis_clips=4, sweep=False, held_out_clips=4, long_clips=3, long_frames=32,
        )  # fmt: skip


def frame_flops(pipe: Any, guided: bool) -> int:
    """Matmul FLOPs of the transformer for one frame (all scales + the clean commit), no decoding."""
    tr = pipe.model.transformer
    c, layout = tr.config, tr.layout
    W, V, rows = c.width, pipe.config.tokenizer.vocab_size, 2 if guided else 1
    hidden = int(W * c.mlp_ratio)
    context = (c.sink_frames + c.window_frames) * layout.clean_tokens
    per_token = 2 * (4 * W * W + 2 * W * hidden)
    flops, seen = 0, 0
    for size in layout.scale_sizes:  # scale tokens see the context, and this frame's scales so far
        seen += size
        flops += c.depth * (size * per_token + 2 * 2 * size * (context + seen) * W)
    n = layout.clean_tokens  # the clean commit sees the context and itself
    flops += c.depth * (n * per_token + 2 * 2 * n * (context + n) * W)
    flops += 2 * layout.scale_tokens * W * V
    return rows * flops


def _held_out(count: int, num_objects: int = 1) -> list[Any]:
    """The benchmark's held-out paraphrase prompts (a fixed seed per object count): one object, balanced over
    colours, motions, shapes and their phrases (`balanced_prompts`); two objects, drawn at random."""
    if num_objects == 1:
        return balanced_prompts(count, seed=2025)
    return eval_prompts(count, seed=2024 + num_objects, num_objects=num_objects)


def _adherence(pipe: Any, s: BenchSettings, num_objects: int, count: int) -> dict[str, Any]:
    """Mean accuracies; for one object also `by_value`, each attribute's accuracy per asked-for value."""
    prompts = _held_out(count, num_objects)
    out, by_value = adherence_details(pipe, prompts, seeds=s.seeds, num_frames=s.num_frames, **s.sampling)
    return {**out, "by_value": by_value} if num_objects == 1 else dict(out)


def _text_side(pipe: Any, s: BenchSettings) -> dict[str, Any]:
    """Adherence on the held-out prompts' specs captioned with the training templates and words (first seed),
    and the text ceiling: what a linear probe reads from the pooled embeddings of the held-out prompts."""
    held_out = _held_out(s.prompts)  # the same specs and captions as `adherence`
    train = train_template_prompts(held_out)
    return {
        "adherence_train_templates": adherence_summary(
            pipe, train, seeds=s.seeds[:1], num_frames=s.num_frames, **s.sampling
        ),
        "text_ceiling": text_ceiling(pipe.encoder, held_out, train_captions=s.probe_captions),
    }


def _drift(pipe: Any, s: BenchSettings) -> dict[str, Any]:
    """Detector accuracy on the first and the last 16 frames of long runs."""
    first: list[dict[str, bool]] = []
    last: list[dict[str, bool]] = []
    for item in eval_prompts(s.drift_prompts, seed=99):
        frames = pipe.generate(item.text, num_frames=s.drift_frames, seed=0, **s.sampling).frames
        first.append(score_frames(frames[:16], item.text))
        last.append(score_frames(frames[-16:], item.text))

    def mean(scores: list[dict[str, bool]]) -> dict[str, float]:
        return {k: float(np.mean([x[k] for x in scores if k in x])) for k in ATTRIBUTES if any(k in x for x in scores)}

    a, b = mean(first), mean(last)
    return {
        "frames": s.drift_frames,
        "first16": a,
        "last16": b,
        "drop_points": {k: 100 * (a[k] - b[k]) for k in a if k in b},
    }


def _switch(pipe: Any, s: BenchSettings) -> dict[str, float]:
    """After the prompt changes at `switch_frame`, do frames from `switch_delay` later follow the new motion?"""
    ok: dict[str, list[float]] = {"motion": [], "colour": [], "shape": []}
    for before, after, _wanted in switch_prompts(s.switch_prompts):
        start = s.switch_frame + s.switch_delay
        frames = pipe.generate(
            before,
            num_frames=start + 16,
            seed=0,
            **s.sampling,
            prompt_schedule=[(s.switch_frame, after)],
        ).frames
        score = score_frames(frames[start:], after)
        for key in ok:
            ok[key].append(float(score.get(key, False)))
    return {f"{k}_after_switch": float(np.mean(v)) for k, v in ok.items()}


def _latent_run(pipe: Any, prompt: str, frames: int, sampling: dict[str, float]) -> tuple[float, int]:
    """Seconds of `frames` frames of generation without decoding, and the matmul/attention FLOPs they take."""
    flow = isinstance(pipe, FlowPolicyHost)
    if flow:  # causal flow: FLOPs counted by torch on a separate run
        from torch.utils.flop_counter import FlopCounterMode

        def run() -> None:
            pipe.latents(prompt, num_frames=frames, **sampling)

        with FlopCounterMode(display=False) as counter:
            run()
        flops = counter.get_total_flops()
    else:
        text = pipe.text_embedding(prompt)
        settings = pipe.sampling_settings(**sampling)

        def run() -> None:
            for _ in stream_latents(pipe.model, lambda f: text, frames, settings, generator=torch.Generator()):
                pass

        flops = frame_flops(pipe, guided=settings.guided) * frames
    start = time.perf_counter()
    run()
    return time.perf_counter() - start, flops


def _speed(pipe: Any, s: BenchSettings) -> dict[str, float]:
    """Time to first frame (fresh stream on a loaded pipeline), frames/s with and without decoding."""
    prompt = "a red ball moving left"
    pipe.generate(prompt, num_frames=2)  # warm-up: the text encoder loads, kernels warm

    def first_frame() -> float:
        start = time.perf_counter()
        next(iter(pipe.stream(f"{prompt} {time.perf_counter_ns()}", num_frames=1)))  # an uncached prompt
        return time.perf_counter() - start

    ttff = statistics.median(first_frame() for _ in range(s.repeats))
    start = time.perf_counter()
    pipe.generate(prompt, num_frames=s.speed_frames, **s.sampling)
    with_decode = s.speed_frames / (time.perf_counter() - start)
    seconds, flops = _latent_run(pipe, prompt, s.speed_frames, s.sampling)
    peak = matmul_peak(1024, 1, max(1, s.repeats), torch.Generator().manual_seed(0))
    achieved = flops / seconds / 1e9
    return {
        "time_to_first_frame_s": ttff,
        "frames_per_s_with_decode": with_decode,
        "frames_per_s_without_decode": s.speed_frames / seconds,
        "transformer_gflop_per_frame": flops / s.speed_frames / 1e9,
        "achieved_gflops": achieved,
        "matmul_peak_gflops": peak["gflops"],
        "of_peak": achieved / peak["gflops"],
    }


def cli_cold_start(ckpt: str, model: str, frames: int = 16) -> dict[str, float]:
    """Seconds from launching `genmotion video` in a fresh process to its first frame on disk (a PNG folder
    output writes each frame as it is made), and to the end of the run."""
    import shutil
    import subprocess
    import sys
    import tempfile

    exe = Path(sys.executable).with_name("genmotion")
    cmd = [str(exe)] if exe.exists() else [shutil.which("genmotion") or "genmotion"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "frames"
        args = ["video", "-p", "a red ball moving left", "-n", str(frames), "--model", model, "--ckpt", ckpt]
        start = time.perf_counter()
        proc = subprocess.Popen([*cmd, *args, "-o", f"{out}/"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        first = None
        while proc.poll() is None and first is None:
            if any(Path(tmp).glob("**/*.png")):
                first = time.perf_counter() - start
            time.sleep(0.01)
        _, err = proc.communicate()
        total = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"genmotion video failed ({proc.returncode}): {err.decode()[-500:]}")
    return {"cli_cold_start_to_first_frame_s": total if first is None else first, "cli_total_s": total}


def _window_frames(pipe: Any) -> int:
    """Frames of context after which the cache stops growing."""
    return int(pipe.cache_window_frames)


def _generator_parameters(pipe: Any) -> int:
    """Parameters of the generative model, without its (frozen) tokenizer/autoencoder."""
    return sum(p.numel() for n, p in pipe.model.named_parameters() if not n.startswith("tokenizer."))


def _cache_curve(pipe: Any, s: BenchSettings) -> dict[str, Any]:
    """Bytes the KV cache holds (valid entries) and has allocated, at 1, 2, 4, ... frames."""
    frames, held, allocated = [], [], []
    for chunk in pipe.stream("a blue box moving up", num_frames=s.drift_frames, **s.sampling):
        n = chunk.index + chunk.frames.shape[0]
        if n & (n - 1) == 0 or n == s.drift_frames:
            frames.append(n)
            held.append(chunk.cache_valid_bytes)
            allocated.append(chunk.cache_bytes)
    after = [b for f, b in zip(frames, held, strict=True) if f > _window_frames(pipe)]
    return {"frames": frames, "bytes": held, "allocated_bytes": allocated, "flat_after_window": len(set(after)) <= 1}


def run_video_bench(pipe: Any, settings: BenchSettings | None = None) -> dict[str, Any]:
    """Every measurement, as a JSON-ready dict."""
    s = settings or BenchSettings()
    t = pipe.config.tokenizer
    return {
        "setup": {
            "resolution": f"{t.image_size}x{t.image_size}",
            "model": type(pipe).__name__,
            "transformer_parameters": _generator_parameters(pipe),
            **host_info(),
            "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(s).items()},
            "prompt_set": f"{s.prompts} one-object held-out prompts balanced over colours, motions, shapes and "
            "their phrases (balanced_prompts, seed 2025) x the seeds; two-object prompts drawn at random (seed 2026)",
        },
        "adherence": _adherence(pipe, s, 1, s.prompts),
        "adherence_two_objects": _adherence(pipe, replace(s, seeds=s.seeds[:1]), 2, s.two_object_prompts),
        **_text_side(pipe, s),
        "drift": _drift(pipe, s),
        "prompt_switch": _switch(pipe, s),
        "quality": run_quality(pipe, s),
        "speed": _speed(pipe, s),
        "cache": _cache_curve(pipe, s),
    }


def summary_line(r: dict[str, Any]) -> str:
    a, sp, d = r["adherence"], r["speed"], r["drift"]["drop_points"]
    tt, tc = r["adherence_train_templates"], r["text_ceiling"]
    return (
        f"adherence colour {100 * a['adherence_colour']:.0f}% shape {100 * a['adherence_shape']:.0f}% motion "
        f"{100 * a['adherence_motion']:.0f}%; drift (first-last 16 of {r['drift']['frames']}) "
        f"{d.get('all', float('nan')):+.0f} pts; switch motion {100 * r['prompt_switch']['motion_after_switch']:.0f}%; "
        f"TTFF {sp['time_to_first_frame_s'] * 1e3:.0f} ms; {sp['frames_per_s_with_decode']:.1f} frames/s with decode "
        f"({sp['frames_per_s_without_decode']:.1f} without); CLI cold start to first frame "
        f"{sp.get('cli_cold_start_to_first_frame_s', float('nan')):.1f} s; "
        f"cache flat: {r['cache']['flat_after_window']}; "
        f"same specs in training words: colour {100 * tt['adherence_colour']:.0f}% motion "
        f"{100 * tt['adherence_motion']:.0f}%; text ceiling (probe): colour {100 * tc['probe_colour']:.0f}% "
        f"shape {100 * tc['probe_shape']:.0f}% motion {100 * tc['probe_motion']:.0f}%"
        + (f"; {quality_line(r['quality'])}" if "quality" in r else "")
    )


def plot_video_bench(r: dict[str, Any], path: str | Path) -> Path:
    """Bars: adherence per attribute, drift, prompt switch, speed, and cache bytes at each frame count."""
    a = r["adherence"]
    pct = {k.removeprefix("adherence_"): 100 * v for k, v in a.items() if k.startswith("adherence_")}
    by_value = a.get("by_value", {})
    drift = {f"first16 {k}": 100 * v for k, v in r["drift"]["first16"].items()}
    drift |= {f"last16 {k}": 100 * v for k, v in r["drift"]["last16"].items()}
    speed = {k: v for k, v in r["speed"].items() if k in ("frames_per_s_with_decode", "frames_per_s_without_decode")}
    panels = [
        ("adherence on held-out paraphrases (%)", pct),
        *[(f"{k} accuracy by asked-for {k} (%)", {v: 100 * x for v, x in by_value[k].items()}) for k in by_value],
        (
            "same specs in training words (%) | text ceiling: probe on held-out (%)",
            {f"train words {k}": 100 * r["adherence_train_templates"][f"adherence_{k}"] for k in CEILING_ATTRIBUTES}
            | {f"probe {k}": 100 * r["text_ceiling"][f"probe_{k}"] for k in CEILING_ATTRIBUTES},
        ),
        (f"drift over {r['drift']['frames']} frames (%)", drift),
        ("prompt switch (%)", {k: 100 * v for k, v in r["prompt_switch"].items()}),
        ("speed (frames/s)", speed),
        (
            "KV cache bytes vs frames",
            {f"frame {f}": float(b) for f, b in zip(r["cache"]["frames"], r["cache"]["bytes"], strict=True)},
        ),
    ]
    if "quality" in r:
        panels[1:1] = quality_panels(r["quality"])
        plot_strip(r["quality"], Path(path).with_name(Path(path).stem + "_strip.png"))
    return bar_chart(panels, path)
