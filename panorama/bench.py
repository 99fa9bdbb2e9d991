"""`genmotion bench panorama`: held-out toy-world 360 scenes filmed along random camera paths.

Per sampling variant (the full model, the ablations, the independent-faces baseline): PSNR/SSIM of the
covered region against the input (the 1K output seen back through the input camera), PSNR of the
uncovered region against ground truth (at the model's face size), the seam error against ground truth's
own, temporal flicker and attention compute. Speed and memory per output size run in a child process each
(peak RSS of its own), H.264 encoding included.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from genmotion.panorama.config import SampleConfig, output_size
from genmotion.panorama.data import Clip, PanoDataConfig, toy_clip
from genmotion.panorama.geometry import equirect_to_perspective
from genmotion.panorama.metrics import flicker, psnr_masked, seam_error, seam_parts, ssim

__all__ = ["BenchSettings", "plot_panorama_bench", "run_panorama_bench", "speed_probe"]

VARIANTS: dict[str, SampleConfig] = {
    "full": SampleConfig(),
    "no_cube_rope": SampleConfig(rope="strip"),
    "no_padding_blending": SampleConfig(padding=False),
    "full_context_attention": SampleConfig(attention="full"),
    "no_future_fragments": SampleConfig(future=False),
    "independent_faces": SampleConfig(independent=True),
    "one_sided_blend": SampleConfig(blend="one_sided"),
}


@dataclass(frozen=True, kw_only=True)
class BenchSettings:
    clips: int = 3
    frames: int = 16
    input_size: tuple[int, int] = (144, 192)
    sizes: tuple[str, ...] = ("1k", "2k", "4k")
    speed_frames: int = 12
    seed: int = 9000

    @staticmethod
    def quick() -> BenchSettings:
        return BenchSettings(clips=1, frames=8, sizes=("1k",), speed_frames=4)


def _cpu() -> dict[str, Any]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    return {"cpu": model, "machine": platform.machine(), "flags": [f for f in wanted if f in flags]}


def _uint8_video(clip: Clip) -> Any:
    return ((clip.video.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def _clips(s: BenchSettings) -> list[Clip]:
    g = torch.Generator().manual_seed(s.seed)
    return [toy_clip(g, PanoDataConfig(frames=s.frames, input_size=s.input_size), 16) for _ in range(s.clips)]


def _variant_scores(pipe: Any, clips: list[Clip], sample: SampleConfig) -> dict[str, float]:
    rows: dict[str, list[float]] = {k: [] for k in ("covered_psnr", "covered_ssim", "uncovered_psnr", "seam")}
    rows.update(
        seam_gt=[], flicker=[], flicker_gt=[], attention_pairs=[], seconds_per_frame=[], cpu_seconds_per_frame=[]
    )
    for who in ("", "_gt"):  # the seam error split by edge kind, for the output and for ground truth
        rows.update({f"seam{who}_lateral": [], f"seam{who}_top_bottom": []})
    for clip in clips:
        start, cpu = time.perf_counter(), time.process_time()
        r = pipe.generate(_uint8_video(clip), clip.trajectory, size="1k", seed=0, sample=sample)
        rows["seconds_per_frame"].append((time.perf_counter() - start) / len(clip.trajectory))
        rows["cpu_seconds_per_frame"].append((time.process_time() - cpu) / len(clip.trajectory))
        rows["attention_pairs"].append(pipe.sampler.attention_pairs)
        eq = torch.as_tensor(r.frames).permute(0, 3, 1, 2).float() / 127.5 - 1
        h, w = clip.video.shape[-2:]
        back = torch.cat(
            [
                equirect_to_perspective(
                    eq[i : i + 1], float(clip.trajectory.fov[i]), clip.trajectory.rotations()[i : i + 1], h, w
                )
                for i in range(eq.shape[0])
            ]
        )
        inner = torch.zeros(1, 1, h, w)
        inner[..., 2:-2, 2:-2] = 1  # the outermost pixels resample across the field-of-view border
        rows["covered_psnr"].append(psnr_masked(back, clip.video, inner))
        rows["covered_ssim"].append(ssim(back, clip.video))
        cube, gt = r.cube, clip.gt
        m = (clip.mask > 0.5).float()
        rows["uncovered_psnr"].append(psnr_masked(cube, gt, 1 - m))
        rows["seam"].append(seam_error(cube))
        rows["seam_gt"].append(seam_error(gt))
        for who, c in (("", cube), ("_gt", gt)):
            parts = seam_parts(c)
            rows[f"seam{who}_lateral"].append(parts["lateral_seam"])
            rows[f"seam{who}_top_bottom"].append(parts["top_bottom_seam"])
        rows["flicker"].append(flicker(cube))
        rows["flicker_gt"].append(flicker(gt))
    return {k: sum(v) / len(v) for k, v in rows.items()}


def speed_probe(ckpt: str, size: str, frames: int, threads: int) -> None:
    """(Run in a child process.) Time one generation at `size` written to a tagged MP4; print JSON."""
    import os

    import genmotion
    from genmotion.panorama.export import open_panorama_writer

    torch.set_num_threads(threads)
    pipe: Any = genmotion.load(ckpt)
    clip = _clips(BenchSettings(clips=1, frames=frames))[0]
    page = os.sysconf("SC_PAGE_SIZE")
    rss: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), time.process_time()
        with open_panorama_writer(Path(tmp) / "out.mp4", pipe.fps, "equirect") as writer:
            for chunk in pipe.stream(_uint8_video(clip), clip.trajectory, size=size, seed=0):
                writer.write(chunk.frames)
                rss.append(int(Path("/proc/self/statm").read_text().split()[1]) * page)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    w, h = output_size(size)
    out = {"size": f"{w}x{h}", "frames": frames, "windows": len(rss), "seconds_per_frame": seconds / frames}
    out["cpu_seconds_per_frame"] = cpu / frames  # this process's CPU time: what a quiet machine would take
    out.update(peak_rss_bytes=peak, rss_after_each_window=rss)
    sys.stdout.write(json.dumps(out) + "\n")


def _speed(ckpt: str, s: BenchSettings, threads: int) -> dict[str, Any]:
    out = {}
    for size in s.sizes:
        call = f"speed_probe({ckpt!r}, {size!r}, {s.speed_frames}, {threads})"
        code = f"from genmotion.panorama.bench import speed_probe; {call}"
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        out[size] = json.loads(run.stdout.strip().splitlines()[-1])
    return out


def run_panorama_bench(ckpt: str, settings: BenchSettings | None = None, *, threads: int = 1) -> dict[str, Any]:
    """Every measurement, as a JSON-ready dict."""
    import genmotion

    s = settings or BenchSettings()
    pipe: Any = genmotion.load(ckpt)
    clips = _clips(s)
    variants = {name: _variant_scores(pipe, clips, sample) for name, sample in VARIANTS.items()}
    full, sparse_dense = variants["full"], variants["full_context_attention"]
    return {
        "setup": {
            **_cpu(),
            "threads": threads,
            "checkpoint": ckpt,
            "face_size": pipe.config.face_size,
            "window": pipe.config.window,
            "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(s).items()},
            "held_out": f"{s.clips} toy-world 360 clips (seed {s.seed}), random camera paths, input {s.input_size}",
        },
        "variants": variants,
        "targets": {
            "seam_ratio_to_gt": full["seam"] / full["seam_gt"],
            "seam_within_1.5x_gt": full["seam"] <= 1.5 * full["seam_gt"],
            "no_padding_seam_worse": variants["no_padding_blending"]["seam"] > full["seam"],
            "covered_psnr_at_least_30db": full["covered_psnr"] >= 30.0,
            "sparse_minus_full_attention_uncovered_db": full["uncovered_psnr"] - sparse_dense["uncovered_psnr"],
            "attention_compute_ratio_full_over_sparse": sparse_dense["attention_pairs"]
            / max(full["attention_pairs"], 1),
        },
        "speed": _speed(ckpt, s, threads),
    }


def plot_panorama_bench(results: dict[str, Any], path: str | Path) -> None:
    from genmotion.bench.report import bar_chart

    v = results["variants"]
    panels = [
        ("uncovered PSNR vs ground truth (dB, 16-px faces)", {k: r["uncovered_psnr"] for k, r in v.items()}),
        ("covered PSNR vs input (dB, 1K seen by the input camera)", {k: r["covered_psnr"] for k, r in v.items()}),
        ("seam error (ground truth's own: {:.2f})".format(v["full"]["seam_gt"]), {k: r["seam"] for k, r in v.items()}),
        ("attention query-key pairs per layer (millions)", {k: r["attention_pairs"] / 1e6 for k, r in v.items()}),
        (
            "CPU seconds per frame (H.264 included)",
            {k: r["cpu_seconds_per_frame"] for k, r in results["speed"].items()},
        ),
        ("peak RSS (GB)", {k: r["peak_rss_bytes"] / 1e9 for k, r in results["speed"].items()}),
    ]
    bar_chart(panels, path)


def render_preview(ckpt: str, path: str | Path, *, seed: int = 9000, frames: int = 16) -> Path:
    """A picture of one held-out clip: per row (frames 0, middle, last) the input view, the ground-truth
    equirect (ray-cast at 512 x 256) and the 1K output (shown at 512 x 256), written as a PNG."""
    import numpy as np
    from PIL import Image

    import genmotion
    from genmotion.data.toyworld.raycast import render_equirect
    from genmotion.data.toyworld.scene3d import sample_scene

    pipe: Any = genmotion.load(ckpt)
    data = PanoDataConfig(frames=frames, input_size=(144, 192))
    clip = toy_clip(torch.Generator().manual_seed(seed), data, pipe.config.face_size)
    scene = sample_scene(torch.Generator().manual_seed(seed))  # the clip's scene: its first draw
    out = pipe.generate(_uint8_video(clip), clip.trajectory, size="1k", seed=0).frames
    rows = []
    for t in (0, frames // 2, frames - 1):
        gt = render_equirect(scene, t, 256, 512).rgb[0].numpy()
        pano = np.asarray(Image.fromarray(out[t]).resize((512, 256), Image.Resampling.BILINEAR))
        view = np.asarray(Image.fromarray(_uint8_video(clip)[t]).resize((192, 144)))
        view = np.pad(view, ((56, 56), (8, 8), (0, 0)), constant_values=255)
        rows.append(np.concatenate([view, gt, np.full((256, 8, 3), 255, np.uint8), pano], axis=1))
    img = np.concatenate([np.pad(r, ((4, 4), (0, 0), (0, 0)), constant_values=255) for r in rows])
    target = Path(path)
    Image.fromarray(img).save(target)
    return target


def render_seams(ckpts: dict[str, str], path: str | Path, *, seed: int = 9000, frame: int = 8) -> Path:
    """One frame of one held-out clip, one row each: ground truth and every checkpoint's generated 16-pixel
    cube, all drawn as a 512 x 256 equirect by the renderer's own upsampling (bilinear across face edges)
    without the input pasted over it, so every cube seam shows as it is; the title of each row in its corner.
    The cube edges run along longitudes -135, -45, 45, 135 and along the U / D face borders."""
    import numpy as np
    from PIL import Image, ImageDraw

    import genmotion
    from genmotion.panorama.geometry import cube_to_equirect

    data = PanoDataConfig(frames=16, input_size=(144, 192))
    clip = toy_clip(torch.Generator().manual_seed(seed), data, 16)
    cubes = {"ground truth (16-px faces)": clip.gt[frame]}
    for title, ckpt in ckpts.items():
        pipe: Any = genmotion.load(ckpt)
        r = pipe.generate(_uint8_video(clip), clip.trajectory, size="1k", seed=0)
        cubes[title] = r.cube[frame]
    rows = []
    for title, cube in cubes.items():
        eq = cube_to_equirect(cube[None].float(), 256, 512)[0]
        img = Image.fromarray(((eq.permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy())
        ImageDraw.Draw(img).text((4, 2), title, fill=(255, 255, 255))
        rows.append(np.pad(np.asarray(img), ((2, 2), (0, 0), (0, 0)), constant_values=255))
    target = Path(path)
    Image.fromarray(np.concatenate(rows)).save(target)
    return target
