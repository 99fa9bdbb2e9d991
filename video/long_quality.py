"""How a long clip holds up: the toy-world FVD and object statistics of a clip's first and last `window` frames,
each against ground truth of the same prompts over the same frames (the toy world's own render of the whole
clip, reference seed 1; floor seed 2). The target reads the last window's figures against the first's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from genmotion.video.diagnose import generate_set
from genmotion.video.fvd import ground_truth
from genmotion.video.quality import frechet_distance, set_statistics

__all__ = ["long_clip_quality", "window_scores"]


def window_scores(
    net: Any, made: np.ndarray, reference_features: np.ndarray, colours: Sequence[str], window: slice
) -> dict[str, float]:
    """FVD of `made[:, window]` (uint8 (N, T, H, W, 3)) against the reference's features of the same window
    (N, F), and the object statistics of `made[:, window]`."""
    from genmotion.data.toyworld.feature_net import clip_features

    a = np.ascontiguousarray(made[:, window])
    return {"fvd": frechet_distance(clip_features(net, a), reference_features), **set_statistics(a, colours)}


_RATIOS = ("fvd", "area_variation", "pieces", "background_change", "missing")


def _ratio(last: float, first: float) -> float:
    """last / first; 1 where both are 0 (nothing missing in either window), inf where only first is."""
    if first > 0:
        return last / first
    return 1.0 if last == 0 else float("inf")


def long_clip_quality(
    pipe: Any, prompts: Sequence[str], *, num_frames: int = 256, window: int = 16, net: Any = None, **sampling: Any
) -> dict[str, Any]:
    """First and last `window` frames of `num_frames`-frame clips (one per prompt, seed 0, `sampling` keywords)
    against ground truth of the same frames. -> {"generated": {"first", "last"}, "ground_truth": {"first",
    "last"}, "last_over_first": {...}, "clips", "frames", "window"}."""
    from genmotion.data.toyworld.feature_net import clip_features, load_feature_net

    if num_frames < 2 * window:
        raise ValueError(f"need num_frames >= 2 * window to compare two windows, got {num_frames} and {window}")
    net = net if net is not None else load_feature_net()
    reference, specs = ground_truth(prompts, num_frames=num_frames, size=pipe.height, seed=1)
    floor, _ = ground_truth(prompts, num_frames=num_frames, size=pipe.height, seed=2)
    colours = [s.objects[0].colour for s in specs]
    made = generate_set(pipe, prompts, num_frames=num_frames, **sampling)
    parts = {"first": slice(0, window), "last": slice(num_frames - window, num_frames)}
    ref = {k: clip_features(net, np.ascontiguousarray(reference[:, w])) for k, w in parts.items()}  # (N, F) each
    generated = {k: window_scores(net, made, ref[k], colours, w) for k, w in parts.items()}
    truth = {k: window_scores(net, floor, ref[k], colours, w) for k, w in parts.items()}
    ratio = {k: _ratio(generated["last"][k], generated["first"][k]) for k in _RATIOS}
    return {
        "clips": len(prompts),
        "frames": num_frames,
        "window": window,
        "generated": generated,
        "ground_truth": truth,
        "last_over_first": ratio,
    }
