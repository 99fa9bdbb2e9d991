"""`genmotion image` (class-conditional VAR images, in/out-painting, class editing), `genmotion convert var`
and `genmotion bench image`. Thin: flags are checked before any model loads (exit 2 for bad flags,
3 for bad files); torch is imported inside the command bodies so `genmotion --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from genmotion.cli.bench_options import BenchCkpt, BenchJson, BenchPlot, BenchQuick, BenchThreads, check_bench_flags
from genmotion.cli.checks import (
    check_checkpoint_kind,
    check_device_name,
    check_file_input,
    check_file_output,
    check_folder_output,
    check_number,
)
from genmotion.errors import UsageError
from genmotion.image_core.flex_cli import FlexRequest, check_flex_flags, run_flex_image
from genmotion.image_core.variants import IMAGE_KINDS, parse_refine, variant_checkpoint
from genmotion.image_core.watermark_key import parse_key

__all__ = ["register"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_KV = ("full", "scalekv", "hack")
_TTS = tuple[int, tuple[int, ...] | None]  # --tts N and its schedule


def _check_output(path: Path) -> None:
    check_file_output(path, _IMAGE_SUFFIXES)


def _check_file(path: Path | None, flag: str) -> None:
    check_file_input(path, flag)


def image(
    class_: list[str] = typer.Option(..., "--class", "-c", help="Class name or id; repeat for several."),
    num: int = typer.Option(1, "--num", "-n", help="Number of images (a grid when > 1)."),
    guidance: float | None = typer.Option(
        None, "--guidance", help="Classifier-free guidance scale, 1 = off (default: the checkpoint's)."
    ),
    top_k: int | None = typer.Option(None, "--top-k", help="Keep the k most likely codes (0 = off)."),
    top_p: float | None = typer.Option(None, "--top-p", help="Nucleus mass (0 = off)."),
    temperature: float | None = typer.Option(None, "--temperature", help="Sampling temperature."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    model: str | None = typer.Option(None, "--model", "-m", help="VAR-family model: var (default) or a variant."),
    ckpt: str | None = typer.Option(None, "--ckpt", help="Registry name or checkpoint directory [var-toy]."),
    var: Path | None = typer.Option(None, "--var", help="Official var_d*.pth (with --vae) instead of --ckpt."),
    vae: Path | None = typer.Option(None, "--vae", help="Official vae_ch160v4096z32.pth."),
    inpaint: Path | None = typer.Option(None, "--inpaint", help="Image to edit: keep it outside --mask."),
    mask: Path | None = typer.Option(None, "--mask", help="Mask image: white = generate, black = keep."),
    kv: str = typer.Option("full", "--kv", help="KV cache policy: full, scalekv or hack."),
    kv_budget: float = typer.Option(0.25, "--kv-budget", help="Kept context share for scalekv/hack."),
    head_profile: Path | None = typer.Option(None, "--head-profile", help="Head profile JSON for --kv hack."),
    tts: int | None = typer.Option(
        None, "--tts", help="TTS-VAR: search N candidates per image over the scales and keep the best (N >= 1)."
    ),
    tts_schedule: str | None = typer.Option(
        None, "--tts-schedule", help="Rows per scale for --tts, e.g. 8,6,4,2,2,2 (default: derived from N)."
    ),
    steps: int | None = typer.Option(None, "--steps", help="FlexVAR: number of scales (sides 1 .. full latent)."),
    schedule: str | None = typer.Option(None, "--schedule", help="FlexVAR: scale sides, e.g. 1,2,4,8."),
    size: int | None = typer.Option(None, "--size", help="FlexVAR: image side in pixels (default: the trained one)."),
    refine: str | None = typer.Option(
        None, "--refine", help="HMAR masked refinement: passes per scale, e.g. 1,1,2,3,1,1 (1 = one pass)."
    ),
    watermark: str | None = typer.Option(
        None, "--watermark", help="LBW watermark key (16-64 hex digits); detect with `genmotion watermark detect`."
    ),
    watermark_mode: str = typer.Option("soft", "--watermark-mode", help="soft (biased) or hard (green codes only)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    threads: int | None = typer.Option(None, "--threads", help="torch intra-op threads."),
    out: Path = typer.Option(Path("image.png"), "--out", "-o", help="Output image (.png, .jpg)."),
) -> None:
    """Class-conditional images with VAR; with --inpaint/--mask, zero-shot in/out-painting and class editing;
    with --model flexvar, any number of steps (--steps/--schedule) and image size (--size)."""
    if num < 1:
        raise UsageError(f"--num must be >= 1, got {num}", fix="ask for at least one image")
    check_number("--num", num, low=1, high=1024)
    if kv not in _KV:
        raise UsageError(f"unknown --kv {kv!r}", fix=f"use one of {', '.join(_KV)}")
    check_number("--kv-budget", kv_budget, low=0, low_open=True, high=1)
    check_number("--guidance", guidance, low=0)
    check_number("--temperature", temperature, low=0)
    check_number("--top-k", top_k, low=0)
    check_number("--top-p", top_p, low=0, high=1)
    check_number("--threads", threads, low=1)
    check_device_name(device)
    if any(not c.strip() for c in class_):
        raise UsageError("--class is empty", fix="pass a class name or id, e.g. --class 207")
    if sum(x is not None for x in (model, ckpt, var)) > 1:
        raise UsageError("pass one of --model, --ckpt or --var/--vae", fix="drop the others")
    if model is not None:
        ckpt = variant_checkpoint(model)
    if vae is not None and var is None:
        raise UsageError("--vae needs --var", fix="pass the transformer file with --var var_d16.pth")
    if (inpaint is None) != (mask is None):
        raise UsageError("--inpaint and --mask go together", fix="pass the image to edit and its mask")
    for path, flag in (
        (var, "--var"),
        (vae, "--vae"),
        (inpaint, "--inpaint"),
        (mask, "--mask"),
        (head_profile, "--head-profile"),
    ):
        _check_file(path, flag)
    _check_output(out)
    search = _check_tts(tts, tts_schedule, kv, inpaint)
    passes = parse_refine(refine) if refine is not None else None  # its fit to the model is checked after loading
    mark = _check_watermark(watermark, watermark_mode, search)
    kind = check_checkpoint_kind(ckpt, IMAGE_KINDS, "image") if ckpt is not None else "var"
    refused = {"--kv": kv != "full", "--inpaint": inpaint is not None, "--tts": tts is not None,
               "--head-profile": head_profile is not None, "--refine": refine is not None,
               "--watermark": watermark is not None}  # fmt: skip
    flex = check_flex_flags(kind, steps, schedule, size, other_flags=refused)
    _run_image(class_, num, guidance, top_k, top_p, temperature, seed, ckpt, var, vae, inpaint, mask, kv, kv_budget,
               head_profile, device, threads, out, search, flex, passes, mark)  # fmt: skip


def _check_watermark(key: str | None, mode: str, search: _TTS | None) -> tuple[str, str] | None:
    """--watermark KEY [--watermark-mode soft|hard] checked before any model loads: (key, mode), or None."""
    if mode not in ("soft", "hard"):
        raise UsageError(f"unknown --watermark-mode {mode!r}", fix="use soft or hard")
    if key is None:
        if mode != "soft":
            raise UsageError("--watermark-mode needs --watermark", fix="pass --watermark KEY")
        return None
    if search is not None:
        raise UsageError("--watermark does not run with --tts", fix="drop one of them")
    parse_key(key)
    return key, mode


def _check_tts(tts: int | None, schedule: str | None, kv: str, inpaint: Path | None) -> _TTS | None:
    """--tts N [--tts-schedule a,b,...] checked before any model loads: (N, schedule or None), or None."""
    if tts is None:
        if schedule is not None:
            raise UsageError("--tts-schedule needs --tts", fix="pass --tts N, N = the schedule's first count")
        return None
    check_number("--tts", tts, low=1, high=1024)
    if kv != "full" or inpaint is not None:
        raise UsageError("--tts runs with the full KV cache and without --inpaint", fix="drop --kv/--inpaint or --tts")
    if schedule is None:
        return tts, None
    try:
        rows = tuple(int(part) for part in schedule.split(","))
    except ValueError:
        raise UsageError(
            f"--tts-schedule must be comma-separated counts, got {schedule!r}", fix="e.g. 8,6,4,2,2,2"
        ) from None
    if rows[0] != tts:
        raise UsageError(
            f"TTS schedule {list(rows)} starts with {rows[0]} rows but --tts asks for {tts} candidates",
            fix="make the schedule's first count the --tts value",
        )
    return tts, rows


def _run_image(
    classes: list[str], num: int, guidance: float | None, top_k: int | None, top_p: float | None,
    temperature: float | None, seed: int, ckpt: str | None, var: Path | None, vae: Path | None,
    inpaint: Path | None, mask: Path | None, kv: str, kv_budget: float, head_profile: Path | None,
    device: str, threads: int | None, out: Path, search: _TTS | None = None, flex: FlexRequest | None = None,
    refine: tuple[int, ...] | None = None,
    mark: tuple[str, str] | None = None,
) -> None:  # fmt: skip

    import genmotion
    from genmotion.image_core.convert import load_official
    from genmotion.image_core.pipeline import VARPipeline
    from genmotion.image_core.profile import load_head_profile
    from genmotion.image_core.watermark import Watermark
    from genmotion.runtime import configure

    watermark = Watermark(mark[0], mode=mark[1]) if mark is not None else None  # type: ignore[arg-type]
    runtime = configure(device, "auto", threads)
    if var is not None:
        pipe = VARPipeline(load_official(var, vae).to(runtime.device), compute_dtype=runtime.dtype)
    else:
        pipe = genmotion.load(ckpt or "var-toy", device=runtime.device, dtype=runtime.dtype)
        if flex is not None:
            labels = [pipe.class_id(c) for c in classes]
            settings = {"guidance_scale": guidance, "top_k": top_k, "top_p": top_p, "temperature": temperature}
            run_flex_image(pipe, labels, num, settings, seed, flex, out, _progress, _write_grid)
            return
        if not isinstance(pipe, VARPipeline) and pipe.kind not in IMAGE_KINDS:
            raise UsageError(f"{ckpt} is not a VAR-family checkpoint", fix=f"pass one of kind {', '.join(IMAGE_KINDS)}")
    if pipe.kind == "m-var" and (search is not None or head_profile is not None):
        raise UsageError("--tts and --head-profile need a var checkpoint", why="M-VAR keeps no KV cache")
    if search is not None and not isinstance(pipe, VARPipeline):
        raise UsageError(f"--tts runs on VAR checkpoints, not {pipe.kind}", fix="drop --tts or use --model var")
    if watermark is not None and not isinstance(pipe, VARPipeline):
        raise UsageError(f"--watermark runs on var and m-var checkpoints, not {pipe.kind}", fix="drop --watermark")
    if head_profile is not None:
        pipe.head_profile = load_head_profile(head_profile, pipe.model.var)
    labels = [pipe.class_id(c) for c in classes]  # unknown names fail here, before sampling
    settings = {"guidance_scale": guidance, "top_k": top_k, "top_p": top_p, "temperature": temperature}
    if search is not None:
        _run_tts(pipe, [labels[i % len(labels)] for i in range(num)], seed, settings, search, out)
        return
    stream = pipe.stream(
        labels, num_images=num, seed=seed, guidance_scale=guidance, top_k=top_k, top_p=top_p, temperature=temperature,
        kv=kv, kv_budget=kv_budget, image=inpaint, mask=mask,
        **({"refine": refine} if refine is not None else {}), **({"watermark": watermark} if watermark else {}),
    )  # fmt: skip
    images = None
    with _progress() as progress:
        task = progress.add_task("scales", total=len(pipe.config.var.patch_nums))
        for chunk in stream:
            progress.update(task, completed=chunk.index + 1)
            images = chunk.images if chunk.is_last else images
    assert images is not None
    _write_grid(images, out)
    names = ", ".join(pipe.class_names[i] if pipe.class_names else str(i) for i in labels)
    marked = f"; LBW watermark, {watermark.mode}" if watermark is not None else ""
    typer.echo(f"wrote {out} ({num} image{'s' if num > 1 else ''} of {names}, {pipe.width}x{pipe.height}{marked})")


def _progress() -> Any:
    """The transient progress bar of `genmotion image` (one tick per scale)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    return Progress(*columns, transient=True)


def _run_tts(pipe: Any, labels: list[int], seed: int, settings: dict[str, Any], search: _TTS, out: Path) -> None:
    """`--tts N`: one TTS-VAR search per image (one generator for all, seeded once), the best of each written."""
    import numpy as np

    from genmotion.image_core.tts import check_schedule, tts_generate

    candidates, schedule = search
    K = len(pipe.config.var.patch_nums)
    if schedule is not None:
        check_schedule(schedule, K)  # a schedule that does not fit the scales fails before any sampling
    generator, results = pipe.make_generator(seed), []
    with _progress() as progress:
        task = progress.add_task("scales (TTS)", total=K * len(labels))
        for label in labels:
            results.append(tts_generate(
                pipe, label, candidates=candidates, schedule=schedule, generator=generator,
                on_scale=lambda k: progress.advance(task), **settings,
            ))  # fmt: skip
    _write_grid(np.stack([r.image for r in results]), out)
    names = ", ".join(pipe.class_names[i] if pipe.class_names else str(i) for i in dict.fromkeys(labels))
    rows = ",".join(map(str, results[0].schedule))
    scores = " ".join(f"{float(r.scores[r.best]):.2f}" for r in results if len(r.scores))
    typer.echo(
        f"wrote {out} ({len(labels)} image{'s' if len(labels) > 1 else ''} of {names}, {pipe.width}x{pipe.height}; "
        f"TTS-VAR {candidates} candidates, rows per scale {rows}{', best scores ' + scores if scores else ''})"
    )


def _write_grid(images: object, out: Path) -> None:
    """uint8 (N, H, W, 3) -> one image, a near-square grid when N > 1, written atomically."""
    import numpy as np
    from PIL import Image

    from genmotion.io.atomic import atomic_path

    x = np.asarray(images)
    n, h, w, _ = x.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    grid = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = x[i]
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}.get(out.suffix.lower(), "PNG")
    with atomic_path(out) as tmp:
        Image.fromarray(grid).save(tmp, format=fmt)


def convert_var(
    var: Path = typer.Option(..., "--var", help="Official var_d16.pth ... var_d36.pth (or a VAR training ckpt)."),
    vae: Path | None = typer.Option(None, "--vae", help="Official vae_ch160v4096z32.pth."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint directory to write."),
    force: bool = typer.Option(False, "--force", help="Write over a folder genmotion did not write (moved aside)."),
    bf16: bool = typer.Option(False, "--bf16", help="Store the weights as bf16 (half the size)."),
    norm_groups: int = typer.Option(32, "--norm-groups", help="Tokenizer GroupNorm groups (32 for the official)."),
    mvar: bool = typer.Option(
        False, "--mvar", help="An official MVAR file: add its 7x7 window from scale 8 (the weights do not record it)."
    ),
) -> None:
    """Convert the official VAR (or MVAR) checkpoints to a genmotion checkpoint directory (safetensors, kind var)."""
    _check_file(var, "--var")
    _check_file(vae, "--vae")
    check_number("--norm-groups", norm_groups, low=1)
    check_folder_output(out, "checkpoint", force)
    import torch

    from genmotion.image_core.convert import convert_official

    dtype = torch.bfloat16 if bf16 else None
    window = (7, 8) if mvar else None  # MVAR's kernel_size and refine_step
    path = convert_official(var, vae, out, norm_groups=norm_groups, dtype=dtype, force=force, neighbourhood=window)
    typer.echo(f"wrote {path} (use it with: genmotion image --ckpt {path} --class 207)")


def bench_image(
    json_path: BenchJson,
    plot: BenchPlot = None,
    quick: BenchQuick = False,
    threads: BenchThreads = 2,
    ckpt: BenchCkpt = "var-toy",
    parts: Annotated[
        str | None, typer.Option("--parts", help="Comma-separated parts to (re)run; the rest stay as in --json.")
    ] = None,
) -> None:
    """Cache parity, d16 speed and GFLOP/s vs the matmul peak, var-toy accuracy, ScaleKV/HACK bytes and PSNR,
    TTS-VAR, and the class-accuracy table of the VAR family."""
    check_bench_flags(json_path, plot, threads)
    from genmotion.image_core.bench_run import parse_parts, run_image_bench

    run_image_bench(json_path, plot, quick=quick, threads=threads, ckpt=ckpt, parts=parse_parts(parts))


def _convert_app(app: typer.Typer) -> typer.Typer:
    """The `convert` group, shared with other generators."""
    from genmotion.cli.app import CONVERT_HELP, command_group

    return command_group(app, "convert", CONVERT_HELP)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `genmotion image`, `convert var|hmar|flexvar|m-var|flowar`, `bench image` and `watermark detect`."""
    from genmotion.image_core.watermark_cli import watermark_app

    app.command("image")(image)
    app.add_typer(watermark_app, name="watermark")
    _convert_app(app).command("var")(convert_var)
    from genmotion.image_core.official_cli import convert_flexvar, convert_flowar, convert_hmar, convert_m_var

    _convert_app(app).command("hmar")(convert_hmar)
    _convert_app(app).command("flexvar")(convert_flexvar)
    _convert_app(app).command("m-var")(convert_m_var)
    _convert_app(app).command("flowar")(convert_flowar)
    bench_app.command("image")(bench_image)
