"""The toy world's own video classifier (its "I3D"): a small 3-D conv net trained on rendered ground truth to
name each clip's colour, shape, motion, size and background. Its penultimate features (`FEATURE_DIM`) are
what the toy-world FVD compares (Unterthiner et al. 2018, FVD, with this net in place of I3D).

Axes: N clips, T frames, H x W pixels. Clips enter as uint8 (N, T, H, W, 3); any size is resampled to
`INPUT_SIZE` (area), any length >= 4 frames works (global pooling over time).
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genmotion.data.toyworld.render import render_clips
from genmotion.data.toyworld.spec import ClipSpec, sample_clip_spec
from genmotion.data.toyworld.vocab import BACKGROUNDS, COLOURS, MOTIONS, SHAPES, SIZES
from genmotion.errors import InputError

__all__ = [
    "FEATURE_DIM",
    "HEADS",
    "INPUT_SIZE",
    "WEIGHTS",
    "ClipFeatureNet",
    "clip_features",
    "labels_of",
    "load_feature_net",
    "train_feature_net",
]

INPUT_SIZE = 32
FEATURE_DIM = 128
HEADS: dict[str, tuple[str, ...]] = {
    "colour": COLOURS,
    "shape": SHAPES,
    "motion": MOTIONS,
    "size": SIZES,
    "background": BACKGROUNDS,
}
WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "toyworld-fvd" / "feature_net.safetensors"
log = logging.getLogger(__name__)


class ClipFeatureNet(nn.Module):
    """(N, 3, T, 32, 32) in [-1, 1] -> features (N, FEATURE_DIM); `logits` adds one linear head per attribute."""

    def __init__(self, widths: tuple[int, ...] = (24, 48, 96, 128)) -> None:
        super().__init__()
        w = (3, *widths)
        strides = ((1, 2, 2), (2, 2, 2), (2, 2, 2), (1, 1, 1))
        self.convs = nn.ModuleList(
            nn.Conv3d(a, b, 3, stride=s, padding=1) for a, b, s in zip(w[:-1], w[1:], strides, strict=True)
        )
        self.project = nn.Linear(w[-1], FEATURE_DIM)
        self.heads = nn.ModuleDict({k: nn.Linear(FEATURE_DIM, len(v)) for k, v in HEADS.items()})

    def forward(self, x_N3THW: torch.Tensor) -> torch.Tensor:
        h = x_N3THW
        for conv in self.convs:
            h = F.silu(conv(h))  # (N, C, T', H', W')
        return F.silu(self.project(h.mean(dim=(2, 3, 4))))  # (N, FEATURE_DIM)

    def logits(self, features_NF: torch.Tensor) -> dict[str, torch.Tensor]:
        return {k: head(features_NF) for k, head in self.heads.items()}


def _as_input(frames: Any) -> torch.Tensor:
    """uint8 (N, T, H, W, 3) (numpy or torch) -> float (N, 3, T, 32, 32) in [-1, 1]."""
    x = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
    if x.dim() != 5 or x.shape[-1] != 3 or x.shape[1] < 4:
        raise InputError(
            f"clips of shape {tuple(x.shape)} cannot be scored",
            why="the feature net reads uint8 clips shaped (N, T, H, W, 3) with T >= 4",
            fix="stack whole clips of at least 4 RGB frames",
        )
    n, t, h, w, _ = x.shape
    x = x.permute(0, 1, 4, 2, 3).float().div(127.5).sub(1.0)  # (N, T, 3, H, W)
    if (h, w) != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x.flatten(0, 1), size=(INPUT_SIZE, INPUT_SIZE), mode="area").view(n, t, 3, *(INPUT_SIZE,) * 2)
    return x.transpose(1, 2).contiguous()


@torch.no_grad()
def clip_features(net: ClipFeatureNet, frames: Any, batch: int = 64) -> np.ndarray:
    """Penultimate features of uint8 clips (N, T, H, W, 3) -> float64 (N, FEATURE_DIM)."""
    x = _as_input(frames)
    out = [net(x[i : i + batch]).double() for i in range(0, x.shape[0], batch)]
    return torch.cat(out).numpy()


def load_feature_net(path: str | Path | None = None) -> ClipFeatureNet:
    """The shipped net (bf16 weights, run in float32), or the one saved at `path`, in eval mode."""
    from safetensors.torch import load_file

    file = Path(path) if path is not None else WEIGHTS
    if not file.is_file():
        raise InputError(f"no feature net at {file}", fix="train one: python -m genmotion.data.toyworld.feature_net")
    net = ClipFeatureNet()
    net.load_state_dict({k: v.float() for k, v in load_file(str(file)).items()})
    return net.eval()


def labels_of(specs: list[ClipSpec]) -> dict[str, torch.Tensor]:
    """Class indices (N,) per head of one-object specs."""
    out = {k: [v.index(getattr(s.objects[0], k)) for s in specs] for k, v in HEADS.items() if k != "background"}
    out["background"] = [BACKGROUNDS.index(s.background) for s in specs]
    return {k: torch.tensor(v) for k, v in out.items()}


def _batch(generator: torch.Generator, size: int, frames: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    specs = [sample_clip_spec(generator, num_objects=1) for _ in range(size)]
    start = int(torch.randint(0, 241, (), generator=generator))
    clips = render_clips(specs, frames, INPUT_SIZE, INPUT_SIZE, start_frame=start).frames
    return _as_input(clips), labels_of(specs)


def _accuracy(net: ClipFeatureNet, x: torch.Tensor, y: dict[str, torch.Tensor]) -> dict[str, float]:
    with torch.no_grad():
        logits = net.logits(net(x))
    return {k: float((logits[k].argmax(1) == y[k]).float().mean()) for k in HEADS}


def train_feature_net(
    out: str | Path, *, steps: int = 1200, batch: int = 32, frames: int = 16, lr: float = 2e-3, seed: int = 0
) -> dict[str, Any]:
    """Train on freshly rendered one-object clips (random windows of endless clips), save bf16 weights at `out`,
    and return the held-out accuracy per head (512 clips from another seed) and the wall time."""
    from safetensors.torch import save_file

    with torch.random.fork_rng():  # seeds the initialisation only; the global generator is left as it was
        torch.manual_seed(seed)
        net = ClipFeatureNet()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    held_x, held_y = _batch(torch.Generator().manual_seed(10_000 + seed), 512, frames)
    start = time.perf_counter()
    for step in range(steps):
        for group in opt.param_groups:  # warm-up then cosine
            group["lr"] = lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * step / steps))
        x, y = _batch(g, batch, frames)
        logits = net.logits(net(x))
        loss = torch.stack([F.cross_entropy(logits[k], y[k]) for k in HEADS]).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log.info("step %d loss %.4f %.0fs", step, float(loss.detach()), time.perf_counter() - start)
    net.eval()
    accuracy = _accuracy(net, held_x, held_y)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().to(torch.bfloat16).contiguous() for k, v in net.state_dict().items()}, str(tmp))
    tmp.replace(path)
    return {"held_out_accuracy": accuracy, "steps": steps, "batch": batch, "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> None:
    """`python -m genmotion.data.toyworld.feature_net --out PATH --steps N` (one thread is plenty)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(WEIGHTS))
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    log.info("%s", train_feature_net(args.out, steps=args.steps))


if __name__ == "__main__":
    main()
