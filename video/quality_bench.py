"""The `quality` section of `genmotion bench video`: toy-world FVD and object statistics of a pipeline's clips
against ground truth of the same prompts (floor: ground truth of other seeds; ceilings: shuffled and frozen
frames), the diagnosis rows (`video.diagnose`), and the frame strip of 8 fixed prompts (ground truth above
generated), carried in the results as a PNG so the plot step can draw it beside the chart.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np

from genmotion.video.diagnose import diagnose, generate_set
from genmotion.video.evaluate import balanced_prompts, train_template_prompts
from genmotion.video.fvd import Yardstick, frame_strip, ground_truth
from genmotion.video.long_quality import long_clip_quality

__all__ = ["STRIP_PROMPTS", "long_clips", "plot_strip", "quality_line", "quality_panels", "run_quality", "strip_clips"]

STRIP_PROMPTS = (
    "a red ball bouncing to the left",
    "a blue square moving up",
    "a green triangle moving right",
    "a yellow ball moving down",
    "a purple box growing",
    "an orange triangle shrinking",
    "a cyan ball standing still",
    "a white square moving left",
)


def strip_clips(pipe: Any, num_frames: int, **sampling: Any) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth (seed 1) and generated (seed 0, `sampling` keywords) clips of `STRIP_PROMPTS`, each uint8
    (8, T, H, W, 3)."""
    truth, _ = ground_truth(STRIP_PROMPTS, num_frames=num_frames, size=pipe.height, seed=1)
    made = generate_set(pipe, STRIP_PROMPTS, num_frames=num_frames, **sampling)
    return truth, made


def _encode_strip(truth: np.ndarray, made: np.ndarray) -> dict[str, Any]:
    """The clips as one PNG (rows: prompt 0 truth, prompt 0 generated, ...; frames left to right), base64."""
    from PIL import Image

    pairs = np.stack([truth, made], axis=1)  # (P, 2, T, H, W, 3)
    p, _, t, h, w, _ = pairs.shape
    tiles = pairs.transpose(0, 1, 3, 2, 4, 5).reshape(p * 2 * h, t * w, 3)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(tiles)).save(buffer, format="PNG")
    return {
        "prompts": list(STRIP_PROMPTS),
        "frames": t,
        "size": h,
        "png_base64": base64.b64encode(buffer.getvalue()).decode(),
    }


def plot_strip(quality: dict[str, Any], path: str | Path) -> Path:
    """Draw the bench's frame strip (every other frame, pixels doubled, prompts as labels) at `path`."""
    from PIL import Image

    strip = quality["strip"]
    t, h = strip["frames"], strip["size"]
    tiles = np.asarray(Image.open(io.BytesIO(base64.b64decode(strip["png_base64"]))).convert("RGB"))
    pairs = tiles.reshape(len(strip["prompts"]), 2, h, t, h, 3).transpose(0, 1, 3, 2, 4, 5)
    return frame_strip([(p, pair[0], pair[1]) for p, pair in zip(strip["prompts"], pairs, strict=True)], path)


def _ratios(made: dict[str, float], truth: dict[str, float]) -> dict[str, float]:
    """generated / ground truth for each figure with a target (a ground truth of 0 gives inf)."""
    keys = ("fvd", "area_variation", "pieces", "background_change", "frame_change", "sharpness")
    return {k: made[k] / truth[k] if truth[k] > 0 else float("inf") for k in keys}


def _train_word_prompts(s: Any) -> list[str]:
    """The FVD prompts: `s.fvd_clips` balanced one-object specs (seed 2025) in the training templates and words."""
    return [p.text for p in train_template_prompts(balanced_prompts(s.fvd_clips, seed=2025))]


def run_quality(pipe: Any, s: Any) -> dict[str, Any]:
    """Every figure of the section; `s` is the bench's `BenchSettings` (fvd_clips, diagnosis_clips, sweep,
    num_frames, guidance_scale)."""
    held_out = balanced_prompts(s.fvd_clips, seed=2025)
    train_words = [p.text for p in train_template_prompts(held_out)]
    stick = Yardstick(train_words, num_frames=s.num_frames, size=pipe.height)
    made = generate_set(pipe, train_words, num_frames=s.num_frames, **s.sampling)
    anchors = stick.anchors()
    generated = stick.score(made)
    held_out = held_out[: s.held_out_clips]
    paraphrases = Yardstick([p.text for p in held_out], num_frames=s.num_frames, size=pipe.height, net=stick.net)
    made_held_out = generate_set(pipe, paraphrases.prompts, num_frames=s.num_frames, **s.sampling)
    truth, strip_made = strip_clips(pipe, s.num_frames, **s.sampling)
    return {
        "prompt_set": f"{s.fvd_clips} one-object specs (balanced_prompts, seed 2025) captioned with the training "
        "templates and words; ground truth: each prompt rendered with what it leaves open drawn from seed 1 "
        "(reference) and seed 2 (floor); generated: seed 0",
        "clips": s.fvd_clips,
        "frames": s.num_frames,
        **anchors,
        "generated": generated,
        "generated_over_ground_truth": _ratios(generated, anchors["ground_truth"]),
        "held_out_paraphrases": {
            "clips": len(held_out),
            "generated": paraphrases.score(made_held_out),
            "ground_truth_fvd": paraphrases.fvd(paraphrases.floor_clips),
        },
        "diagnosis": diagnose(pipe, stick, made, min(s.diagnosis_clips, s.fvd_clips), sweep=s.sweep),
        "long_clips": long_clips(pipe, s, stick.net),
        "strip": _encode_strip(truth, strip_made),
    }


def long_clips(pipe: Any, s: Any, net: Any = None) -> dict[str, Any]:
    """First vs last 16 frames of `s.long_frames`-frame clips of the first `s.long_clips` FVD prompts."""
    prompts = _train_word_prompts(s)[: s.long_clips]
    return long_clip_quality(pipe, prompts, num_frames=s.long_frames, net=net, **s.sampling)


def _redo_context_rows(pipe: Any, quality: dict[str, Any], s: Any, command: str) -> None:
    """Recompute the diagnosis's tokenizer and teacher-forced rows of an existing `quality` section in place."""
    from genmotion.video.diagnose import context_rows

    stick = Yardstick(_train_word_prompts(s), num_frames=s.num_frames, size=pipe.height)
    quality["diagnosis"].update(context_rows(pipe, stick, quality["diagnosis"]["clips"]))
    quality.setdefault("setup", {})["context_rows_redone"] = "python -m genmotion.video.quality_bench " + command


def main(argv: list[str] | None = None) -> None:
    """`python -m genmotion.video.quality_bench --ckpt NAME --json F [--plot P]`: run only the `quality` section
    and merge it into the bench JSON at F (its other sections are kept as they were; a missing F is created),
    then redraw the chart and strip. For a busy host where the whole bench does not fit."""
    import argparse
    import json
    import sys
    import time
    from dataclasses import asdict

    import torch

    import genmotion
    from genmotion.bench.report import host_info, write_json
    from genmotion.video.bench import BenchSettings, plot_video_bench

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--json", required=True, type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--diagnosis-clips", type=int, default=BenchSettings.diagnosis_clips)
    parser.add_argument("--held-out-clips", type=int, default=BenchSettings.held_out_clips)
    parser.add_argument("--long-clips", type=int, default=BenchSettings.long_clips)
    parser.add_argument("--context-rows-only", action="store_true", help="redo the tokenizer/teacher-forced rows")
    parser.add_argument("--long-only", action="store_true", help="redo only the long-clip rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = BenchSettings(
        diagnosis_clips=args.diagnosis_clips, held_out_clips=args.held_out_clips, long_clips=args.long_clips
    )
    start = time.perf_counter()
    results = json.loads(args.json.read_text()) if args.json.is_file() else {}
    if args.context_rows_only:
        _redo_context_rows(genmotion.load(args.ckpt), results["quality"], settings, " ".join(argv or sys.argv[1:]))
        write_json(results, args.json)
        return
    if args.long_only:
        results["quality"]["long_clips"] = long_clips(genmotion.load(args.ckpt), settings)
        results["quality"]["setup"]["long_clips_redone"] = "python -m genmotion.video.quality_bench " + " ".join(
            argv or sys.argv[1:]
        )
        write_json(results, args.json)
        return
    quality = run_quality(genmotion.load(args.ckpt), settings)
    quality["setup"] = {
        "command": "python -m genmotion.video.quality_bench " + " ".join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        **host_info(),
        "seconds": time.perf_counter() - start,
        "settings": {k: v for k, v in asdict(settings).items() if k in ("fvd_clips", "diagnosis_clips",
                     "held_out_clips", "sweep", "num_frames", "guidance_scale", "long_clips", "long_frames")},
    }  # fmt: skip
    results["quality"] = quality
    write_json(results, args.json)
    if args.plot is not None:
        plot_video_bench(results, args.plot) if "adherence" in results else plot_strip(quality, args.plot)


def quality_line(q: dict[str, Any]) -> str:
    g, t = q["generated"], q["ground_truth"]
    return (
        f"toy-world FVD {g['fvd']:.1f} (ground truth {t['fvd']:.1f}, shuffled {q['shuffled_frames']['fvd']:.1f}); "
        f"area variation {g['area_variation']:.2f} (GT {t['area_variation']:.2f}), pieces {g['pieces']:.2f} "
        f"(GT {t['pieces']:.2f}), background change {g['background_change']:.2f} (GT {t['background_change']:.2f})"
    )


def quality_panels(q: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """Bar-chart panels: FVD with floor and ceilings, the statistics against ground truth, the diagnosis."""
    g, t, d = q["generated"], q["ground_truth"], q["diagnosis"]
    fvd = {
        "ground truth (other seeds)": t["fvd"],
        "generated": g["fvd"],
        "generated, held-out words": q["held_out_paraphrases"]["generated"]["fvd"],
        "shuffled frames (ceiling)": q["shuffled_frames"]["fvd"],
        "frozen first frame (ceiling)": q["frozen_first_frame"]["fvd"],
    }
    stats: dict[str, float] = {}
    for k in ("area_variation", "pieces", "background_change", "frame_change", "sharpness"):
        stats |= {f"{k}: ground truth": t[k], f"{k}: generated": g[k]}
    rows = {"ground truth floor": d["ground_truth_floor"], "tokenizer alone": d["tokenizer_reconstruction"]}
    rows |= {"teacher-forced": d["teacher_forced"], "free running": d["free_running"], **d.get("sampling", {})}
    return [
        (f"toy-world FVD, {q['clips']} clips of {q['frames']} frames", fvd),
        ("object statistics", stats),
        (f"diagnosis: FVD on {d['clips']} clips", {k: v["fvd"] for k, v in rows.items()}),
        ("diagnosis: pieces per frame", {k: v["pieces"] for k, v in rows.items()}),
        ("diagnosis: background change per frame", {k: v["background_change"] for k, v in rows.items()}),
        *_long_panels(q),
    ]


def _long_panels(q: dict[str, Any]) -> list[tuple[str, dict[str, float]]]:
    """FVD and background change of the long clips' first and last windows, ground truth beside them."""
    if "long_clips" not in q:  # a JSON from before the long-clip rows
        return []
    lc, out = q["long_clips"], []
    for key, name in (("fvd", "FVD"), ("background_change", "background change")):
        bars: dict[str, float] = {}
        for part in ("first", "last"):
            bars |= {f"{part} {lc['window']}: ground truth": lc["ground_truth"][part][key]}
            bars |= {f"{part} {lc['window']}: generated": lc["generated"][part][key]}
        out.append((f"{lc['frames']}-frame clips ({lc['clips']}): {name}", bars))
    return out


if __name__ == "__main__":
    main()
