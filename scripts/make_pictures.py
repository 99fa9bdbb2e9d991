"""Regenerate the pictures of the README and docs/ from the embedded defaults (fixed seeds, CPU, ~1 minute).

    python scripts/make_pictures.py            # writes docs/images/*.png

Each generator's picture is what a user gets from its default command: frame strips for the video models
(frames side by side, nearest-neighbour enlarged so the toy resolution stays visible), a class grid for VAR and
one row per VAR-family model, FlowAR's scales, and riganything-toy's rig of a held-out creature above its ground
truth. Panorama and world pictures are drawn by their own preview code (panorama/bench.py, world/visual.py).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger("make_pictures")
OUT = Path(__file__).resolve().parents[1] / "docs" / "images"
PROMPTS = ("a red ball bouncing to the left", "a blue square moving up", "a green triangle moving right")


def enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    """uint8 (H, W, 3) -> (H * scale, W * scale, 3), nearest neighbour."""
    return image.repeat(scale, axis=0).repeat(scale, axis=1)


def strip(frames: np.ndarray, every: int = 2, count: int = 8, scale: int = 3, gap: int = 2) -> np.ndarray:
    """Frames (T, H, W, 3) -> one row of `count` frames, `every` apart, with white gaps."""
    chosen = [enlarge(f, scale) for f in frames[::every][:count]]
    h = chosen[0].shape[0]
    spacer = np.full((h, gap, 3), 255, np.uint8)
    return np.concatenate([x for f in chosen for x in (f, spacer)][:-1], axis=1)


def stack(rows: list[np.ndarray], gap: int = 4) -> np.ndarray:
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(padded)[:-gap]


def video_strips(name: str, **kwargs: object) -> np.ndarray:
    import genmotion

    pipe = genmotion.load(name)
    return stack([strip(pipe.generate(p, num_frames=16, seed=0, **kwargs).frames) for p in PROMPTS])


def ca2vdm_long() -> np.ndarray:
    """ca2vdm-toy over 128 frames (every 14th), each prompt committed as sampled (upper row) and re-encoded (lower)."""
    import genmotion

    pipe = genmotion.load("ca2vdm-toy")
    rows = []
    for prompt in PROMPTS:
        for reencode in (False, True):
            frames = pipe.generate(prompt, num_frames=128, seed=0, reencode_context=reencode).frames
            label = "sampled" if not reencode else "re-encoded"
            rows.append(labelled(strip(frames, every=14, count=10, scale=2), label, width=80))
    return stack(rows)


def var_grid() -> np.ndarray:
    import genmotion

    result = genmotion.load("var-toy").generate(list(range(12)), num_images=12, seed=0)
    rows = [np.concatenate([enlarge(im, 3) for im in result.images[r * 6 : (r + 1) * 6]], axis=1) for r in (0, 1)]
    return stack(rows)


VAR_FAMILY = ("var-toy", "flexvar-toy", "flowar-toy", "hmar-toy", "mvar-toy", "m-var-toy", "nfig-toy")


def labelled(row: np.ndarray, label: str, width: int = 110) -> np.ndarray:
    """The row with `label` written in a white column at its left."""
    from PIL import ImageDraw

    column = Image.new("RGB", (width, row.shape[0]), "white")
    ImageDraw.Draw(column).text((4, row.shape[0] // 2 - 6), label, fill="black")
    return np.concatenate([np.asarray(column), row], axis=1)


def var_family_grid() -> np.ndarray:
    """One row per VAR-family default: the 12 classes in order, seed 0, each model's shipped sampling."""
    import genmotion
    from genmotion.registry import list_models

    shipped = {m.name for m in list_models()}
    rows = []
    for name in (n for n in VAR_FAMILY if n in shipped):
        images = genmotion.load(name).generate(list(range(12)), num_images=12, seed=0).images
        rows.append(labelled(np.concatenate([enlarge(im, 2) for im in images], axis=1), name))
    return stack(rows)


def flowar_grid() -> np.ndarray:
    """flowar-toy: one image per class (two rows), then three samples' scales 2, 4, 8 decoded, coarse to fine."""
    import genmotion

    pipe = genmotion.load("flowar-toy")
    result = pipe.generate(list(range(12)), num_images=12, seed=0)
    rows = [np.concatenate([enlarge(im, 3) for im in result.images[r * 6 : (r + 1) * 6]], axis=1) for r in (0, 1)]
    chunks = list(pipe.stream(["red square", "green triangle", "blue circle"], num_images=3, seed=0, preview=True))
    scales = [c.images for c in chunks if c.images is not None]  # each (3, H, W, 3)
    row = [enlarge(scales[k][i], 2) for i in range(3) for k in (1, 2, 3)]
    return stack([*rows, np.concatenate(row, axis=1)])


def rig_picture(plan: str = "hexapod", seed: int = 11) -> np.ndarray:
    """A posed held-out creature (the bench's way): riganything-toy's rig above the ground truth, three views."""
    import tempfile

    import genmotion
    from genmotion.rigging.bench import _case
    from genmotion.rigging.preview import render_preview
    from genmotion.rigging.skeleton import Skeleton

    V, F, truth, skin = _case(plan, np.random.default_rng(seed))
    r = genmotion.load("riganything-toy").rig((V, F), seed=0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, sk, w in ((f"{plan}: riganything-toy", Skeleton(r.joints, r.parents), r.weights),
                            (f"{plan}: ground truth", truth, skin)):  # fmt: skip
            path = render_preview(Path(tmp) / "p.png", V, F, w, sk, title=name)
            rows.append(np.asarray(Image.open(path).convert("RGB")))
    return stack(rows)


def watermark_grid() -> np.ndarray:
    """var-toy LBW, the 12 classes, seed 0: plain samples; hard-watermarked tokens through the model's decoder;
    the same tokens through the watermark decoder (what `--watermark` gives); their difference x 4."""
    import torch

    import genmotion
    from genmotion.image_core.watermark import Watermark
    from genmotion.pipeline import to_uint8

    pipe = genmotion.load("var-toy")
    plain = pipe.generate(list(range(12)), num_images=12, seed=0).images
    marked = pipe.generate(list(range(12)), num_images=12, seed=0, watermark=Watermark("0be5c0ffee5eed5a", mode="hard"))
    with torch.no_grad():
        own = to_uint8(pipe.model.vae.decode_indices(list(marked.tokens)))
    diff = np.clip(np.abs(marked.images.astype(int) - own.astype(int)) * 4, 0, 255).astype(np.uint8)
    rows = [plain, own, marked.images, diff]
    return stack([np.concatenate([enlarge(im, 3) for im in row], axis=1) for row in rows])


PICTURES: dict[str, Callable[[], np.ndarray]] = {
    "videoar.png": lambda: video_strips("videoar-toy"),
    "ca2vdm.png": lambda: video_strips("ca2vdm-toy"),
    "ca2vdm_long.png": ca2vdm_long,
    "image.png": var_grid,
    "image_family.png": var_family_grid,
    "flowar.png": flowar_grid,
    "rigging.png": rig_picture,
    "watermark_lbw.png": watermark_grid,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="file names to remake (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    OUT.mkdir(parents=True, exist_ok=True)
    for name, make in PICTURES.items():
        if args.only and name not in args.only:
            continue
        Image.fromarray(make()).save(OUT / name)
        log.info("wrote %s", OUT / name)


if __name__ == "__main__":
    main()
