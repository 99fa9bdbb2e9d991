"""`genmotion watermark detect IMAGE --key KEY`: is an image LBW-watermarked? Prints the z-score and the verdict;
exits 0 when the watermark is found and 1 when it is not (as grep does), 2 for bad flags or key, 3 for an
unreadable image. The image is made with `genmotion image --watermark KEY`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from genmotion.cli.checks import check_checkpoint_kind, check_device_name, check_file_input, check_number
from genmotion.errors import InputError
from genmotion.image_core.watermark_key import parse_key

__all__ = ["detect", "watermark_app"]

_KINDS = ("var", "m-var")  # the kinds sampled by VARPipeline.stream, which takes a watermark
watermark_app = typer.Typer(help="LBW watermarks of VAR images: detect them.", no_args_is_help=True)


@watermark_app.command("detect")
def detect(
    image: Path = typer.Argument(..., help="Image to test (.png, .jpg, ...; resized to the model's size)."),
    key: str = typer.Option(..., "--key", help="The watermark key: 16-64 hex digits."),
    ckpt: str = typer.Option(
        "var-toy", "--ckpt", help="The VAR model that made the image (its watermark tokenizer, else its own, reads it)."
    ),
    fpr: float = typer.Option(0.01, "--fpr", help="False-positive rate of the verdict, in (0, 1)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Re-tokenise IMAGE and test it for the watermark of KEY: z-score and verdict; exit 0 found, 1 not found."""
    parse_key(key)
    check_number("--fpr", fpr, low=0, low_open=True, high=1, high_open=True)
    check_device_name(device)
    check_file_input(image, "IMAGE")
    check_checkpoint_kind(ckpt, _KINDS, "watermark detect")
    pixels = _read_rgb(image)

    import genmotion
    from genmotion.image_core.watermark import detect_watermark
    from genmotion.runtime import configure

    runtime = configure(device, "auto", None)
    pipe = genmotion.load(ckpt, device=runtime.device)
    result = detect_watermark(pipe, pixels, key, false_positive_rate=fpr)
    if result.tokenizer == "model":
        note = "ships no watermark tokenizer (watermark_vae.safetensors): the image is read with the model's own"
        typer.echo(f"note: {ckpt} {note}", err=True)
    typer.echo(f"{image}: {result.summary()}")
    raise typer.Exit(0 if result.detected else 1)


def _read_rgb(path: Path) -> object:
    """The image as a uint8 (H, W, 3) array; a file PIL cannot read is an InputError (exit 3)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise InputError(f"cannot read the image {path}", why=str(e), fix="pass a PNG or JPEG file") from e
