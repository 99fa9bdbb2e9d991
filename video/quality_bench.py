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

__all__ = ["STRIP_PROMPTS", "plot_strip", "quality_line", "quality_panels", "run_quality", "strip_clips"]

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


def strip_clips(pipe: Any, num_frames: int, guidance_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Ground truth (seed 1) and generated (seed 0) clips of `STRIP_PROMPTS`, each uint8 (8, T, H, W, 3)."""
    truth, _ = ground_truth(STRIP_PROMPTS, num_frames=num_frames, size=pipe.height, seed=1)
    made = generate_set(pipe, STRIP_PROMPTS, num_frames=num_frames, guidance_scale=guidance_scale)
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


def run_quality(pipe: Any, s: Any) -> dict[str, Any]:
    """Every figure of the section; `s` is the bench's `BenchSettings` (fvd_clips, diagnosis_clips, sweep,
    num_frames, guidance_scale)."""
    held_out = balanced_prompts(s.fvd_clips, seed=2025)
    train_words = [p.text for p in train_template_prompts(held_out)]
    stick = Yardstick(train_words, num_frames=s.num_frames, size=pipe.height)
    made = generate_set(pipe, train_words, num_frames=s.num_frames, guidance_scale=s.guidance_scale)
    anchors = stick.anchors()
    generated = stick.score(made)
    paraphrases = Yardstick([p.text for p in held_out], num_frames=s.num_frames, size=pipe.height, net=stick.net)
    made_held_out = generate_set(pipe, paraphrases.prompts, num_frames=s.num_frames, guidance_scale=s.guidance_scale)
    truth, strip_made = strip_clips(pipe, s.num_frames, s.guidance_scale)
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
            "generated": paraphrases.score(made_held_out),
            "ground_truth_fvd": paraphrases.fvd(paraphrases.floor_clips),
        },
        "diagnosis": diagnose(pipe, stick, made, min(s.diagnosis_clips, s.fvd_clips), sweep=s.sweep),
        "strip": _encode_strip(truth, strip_made),
    }


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
    ]
