"""Class-labelled image data for the VAR tasks: toy-world still images (the default) and class-per-folder
image trees (ImageNet layout: `root/<class name>/*.png|jpg`), plus the classifier that scores samples.

Toy-world classes are colour x shape combinations ("red circle", ...), rendered by the toy world's own
renderer with a random position, size and background per image, so a seed fixes every image and the
toy-world detector can read the class back from generated pixels. Images are float (B, 3, H, W) in
[-1, 1]; labels are int64 (B,).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from genmotion.errors import InputError, UsageError

__all__ = [
    "IMAGE_SUFFIXES",
    "TOY_CLASSES",
    "ImageDataConfig",
    "ImageFolder",
    "ToyImageStream",
    "class_names",
    "classify_toy_images",
    "image_batches",
    "parse_class",
    "render_toy_images",
    "toy_class_accuracy",
]

TOY_COLOURS = ("red", "green", "blue", "yellow")
TOY_SHAPES = ("circle", "square", "triangle")
TOY_CLASSES: tuple[str, ...] = tuple(f"{c} {s}" for c, s in itertools.product(TOY_COLOURS, TOY_SHAPES))
# The checker floor is left out: its 4-pixel cells at 32 px cost a tiny tokenizer more capacity than
# everything that tells the classes apart.
TOY_BACKGROUNDS = ("plain dark", "plain light", "gradient sky")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass(frozen=True, kw_only=True)
class ImageDataConfig:
    """`data:` of both VAR tasks. source "toyworld" renders `TOY_CLASSES`; "folder" reads `root/<class>/*`."""

    source: Literal["toyworld", "folder"] = "toyworld"
    root: str | None = None  # class-per-folder tree (source: folder)
    image_size: int = 32  # side of the square images fed to the model
    hflip: bool = False  # random horizontal flips (folder images)
    eval_images: int = 96  # images scored after training
    sizes: tuple[str, ...] = ("small", "large")  # toy-world object sizes drawn from
    num_images: int = 0  # toy world: 0 = a fresh image every time; N = a fixed pool of N images, reshuffled

    def __post_init__(self) -> None:
        if self.source == "folder" and not self.root:
            raise ValueError("data.root is required with data.source: folder (the class-per-folder image tree)")
        if self.image_size < 8:
            raise ValueError(f"data.image_size must be >= 8, got {self.image_size}")
        if not self.sizes or any(size not in ("small", "large") for size in self.sizes) or self.num_images < 0:
            raise ValueError(f"data.sizes must name small/large (got {self.sizes}) and data.num_images must be >= 0")


# ---- the toy world -----------------------------------------------------------------------------------
def render_toy_images(
    labels_B: torch.Tensor, generator: torch.Generator, size: int, sizes: Sequence[str] = ("small", "large")
) -> torch.Tensor:
    """uint8 (B, size, size, 3): one still object of each label's class, random position/size/background."""
    from genmotion.data.toyworld.render import render_clips
    from genmotion.data.toyworld.spec import ClipSpec, sample_object_spec

    specs = []
    for label in labels_B.tolist():
        colour, shape = TOY_CLASSES[label].split(" ")
        obj = sample_object_spec(generator, shape=shape, colour=colour, motion="still")  # type: ignore[arg-type]
        if obj.size not in sizes:
            obj = sample_object_spec(generator, shape=shape, colour=colour, size=sizes[0], motion="still")  # type: ignore[arg-type]
        background = TOY_BACKGROUNDS[int(torch.randint(len(TOY_BACKGROUNDS), (), generator=generator))]
        specs.append(ClipSpec(objects=(obj,), background=background))  # type: ignore[arg-type]
    return render_clips(specs, 1, size, size).frames[:, 0]


def _to_model_range(images_BHW3: torch.Tensor) -> torch.Tensor:
    return images_BHW3.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


class ToyImageStream(torch.utils.data.IterableDataset):
    """Endless (images (B, 3, H, W) in [-1, 1], labels (B,)) batches of toy-world classes, balanced at random.

    With `num_images` > 0 the images come from a fixed pool of that many (seed 0, classes in turn),
    reshuffled every pass: a small budget then sees each image several times.
    """

    def __init__(
        self,
        batch_size: int,
        seed: int,
        image_size: int,
        sizes: Sequence[str] = ("small", "large"),
        num_images: int = 0,
    ) -> None:
        self.batch_size, self.seed, self.image_size = batch_size, seed, image_size
        self.sizes, self.num_images = tuple(sizes), num_images

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed)
        if not self.num_images:
            while True:
                labels = torch.randint(len(TOY_CLASSES), (self.batch_size,), generator=g)
                yield _to_model_range(render_toy_images(labels, g, self.image_size, self.sizes)), labels
        pool_labels = torch.arange(self.num_images) % len(TOY_CLASSES)
        pool = render_toy_images(pool_labels, torch.Generator().manual_seed(0), self.image_size, self.sizes)
        order = torch.empty(0, dtype=torch.long)
        while True:
            while order.numel() < self.batch_size:
                order = torch.cat([order, torch.randperm(self.num_images, generator=g)])
            pick, order = order[: self.batch_size], order[self.batch_size :]
            yield _to_model_range(pool[pick]), pool_labels[pick]


# ---- class-per-folder trees -----------------------------------------------------------------------------
class ImageFolder(torch.utils.data.Dataset):
    """`root/<class>/<image>`: classes are the sorted sub-folder names; images are resized (shorter side)
    and centre-cropped to `image_size`, RGB."""

    def __init__(self, root: str | Path, image_size: int, *, hflip: bool = False) -> None:
        self.root, self.image_size, self.hflip = Path(root), image_size, hflip
        if not self.root.is_dir():
            raise InputError(
                f"image folder {self.root} does not exist", fix="point data.root at a class-per-folder tree"
            )
        self.classes = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        self.items = [
            (path, label)
            for label, name in enumerate(self.classes)
            for path in sorted((self.root / name).iterdir())
            if path.suffix.lower() in IMAGE_SUFFIXES
        ]
        if not self.items:
            raise InputError(
                f"no images found under {self.root}",
                why=f"expected root/<class name>/<image{'|'.join(IMAGE_SUFFIXES)}>, found classes {self.classes[:5]}",
                fix="lay the images out one folder per class (the ImageNet layout)",
            )

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> torch.Tensor:
        """uint8 (H, W, 3) of item `index`, resized and centre-cropped."""
        from PIL import Image

        path = self.items[index][0]
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except OSError as e:
            raise InputError(f"cannot read image {path}", why=str(e), fix="remove or replace the file") from e
        s = self.image_size
        w, h = image.size
        scale = s / min(w, h)
        image = image.resize((max(s, round(w * scale)), max(s, round(h * scale))), Image.Resampling.BICUBIC)
        w, h = image.size
        left, top = (w - s) // 2, (h - s) // 2
        image = image.crop((left, top, left + s, top + s))
        return torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(s, s, 3)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.load(index), self.items[index][1]


class _FolderBatches(torch.utils.data.IterableDataset):
    """Endless shuffled epochs of an `ImageFolder`, this rank's share only, as model-range batches."""

    def __init__(self, folder: ImageFolder, batch_size: int, seed: int, rank: int, world_size: int) -> None:
        self.folder, self.batch_size, self.seed = folder, batch_size, seed
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed)
        order: list[int] = []
        while True:
            while len(order) < self.batch_size:
                order += torch.randperm(len(self.folder), generator=g)[self.rank :: self.world_size].tolist()
            picked, order = order[: self.batch_size], order[self.batch_size :]
            images = torch.stack([self.folder.load(i) for i in picked])
            if self.folder.hflip:
                flip = torch.rand(len(picked), generator=g) < 0.5
                images[flip] = images[flip].flip(2)
            labels = torch.tensor([self.folder.items[i][1] for i in picked])
            yield _to_model_range(images), labels


def image_batches(
    cfg: ImageDataConfig, batch_size: int, seed: int, rank: int, world_size: int
) -> torch.utils.data.DataLoader:
    """The training stream of `cfg`: endless (images, labels) batches for this process."""
    if cfg.source == "toyworld":
        dataset: torch.utils.data.IterableDataset = ToyImageStream(
            batch_size, seed, cfg.image_size, cfg.sizes, cfg.num_images
        )
    else:
        assert cfg.root is not None
        dataset = _FolderBatches(
            ImageFolder(cfg.root, cfg.image_size, hflip=cfg.hflip), batch_size, seed, rank, world_size
        )
    return torch.utils.data.DataLoader(dataset, batch_size=None)


def class_names(cfg: ImageDataConfig) -> tuple[str, ...]:
    """The class names of a data config, index = label."""
    if cfg.source == "toyworld":
        return TOY_CLASSES
    assert cfg.root is not None
    return tuple(ImageFolder(cfg.root, cfg.image_size).classes)


def parse_class(value: str, names: Sequence[str], num_classes: int) -> int:
    """A class given by id ("3") or by name ("red circle", case and '_'/'-' insensitive) -> its id."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index < num_classes:
            raise UsageError(f"class id {index} is out of range", fix=f"use 0..{num_classes - 1}")
        return index
    wanted = text.lower().replace("_", " ").replace("-", " ")
    for i, name in enumerate(names):
        if name.lower().replace("_", " ").replace("-", " ") == wanted:
            return i
    known = ", ".join(names[:24]) if names else "none (this checkpoint names no classes; pass an id)"
    raise UsageError(f"unknown class {value!r}", why=f"known class names: {known}", fix="pass a class name or an id")


def classify_toy_images(images_BHW3: torch.Tensor) -> list[int]:
    """The toy class the detector reads from each uint8 (B, H, W, 3) image (its largest object), -1 if none."""
    from genmotion.data.toyworld.detector import detect

    out = []
    for image in images_BHW3:
        objects = detect(image).objects
        name = f"{objects[0].colour} {objects[0].shape}" if objects else ""
        out.append(TOY_CLASSES.index(name) if name in TOY_CLASSES else -1)
    return out


def toy_class_accuracy(images_BHW3: torch.Tensor, labels_B: torch.Tensor) -> float:
    """Share of uint8 (B, H, W, 3) images the detector reads as their label's toy class."""
    read = torch.tensor(classify_toy_images(images_BHW3))
    return float((read == labels_B.cpu()).float().mean())
