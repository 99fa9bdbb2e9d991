"""Per-frame scores of decoded world-model outputs against the toy world's ground truth: mean IoU of the
semantic classes, depth AbsRel and delta1 (off the sky, within the decoders' depth range), normal angle
accuracy at 11.25 / 22.5 / 30 degrees (off the sky), RGB PSNR and sharpness (mean image gradient of the
prediction over the truth's: below 1 is blur).

Axes: B frames, H x W pixels.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HIGHER_IS_BETTER", "frame_scores"]

HIGHER_IS_BETTER = {
    "miou": True, "abs_rel": False, "delta1": True, "normal_11": True, "normal_22": True, "normal_30": True,
    "psnr": True, "sharpness": True,
}  # fmt: skip


def _miou(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """(B, H, W) class maps -> (B,) mean IoU over the classes present in either map."""
    out = np.zeros(pred.shape[0])
    for b in range(pred.shape[0]):
        ious = []
        for c in range(num_classes):
            p, g = pred[b] == c, gt[b] == c
            union = np.logical_or(p, g).sum()
            if union:
                ious.append(np.logical_and(p, g).sum() / union)
        out[b] = np.mean(ious) if ious else 1.0
    return out


def frame_scores(
    pred: dict[str, np.ndarray], gt: dict[str, np.ndarray], *, num_classes: int = 4, depth_max: float = 40.0
) -> dict[str, np.ndarray]:
    """Scores (B,) per frame. pred/gt: rgb uint8 (B, H, W, 3), segmentation/classes (B, H, W), depth
    (B, H, W), normals (B, H, W, 3)."""
    classes = gt["classes"]
    scores = {"miou": _miou(pred["segmentation"], classes, num_classes)}
    valid = (classes > 0) & (gt["depth"] <= depth_max)
    p, g = np.maximum(pred["depth"], 1e-3), gt["depth"]
    rel = np.abs(p - g) / g
    ratio = np.maximum(p / g, g / p) < 1.25
    count = np.maximum(valid.sum((1, 2)), 1)
    scores["abs_rel"] = (rel * valid).sum((1, 2)) / count
    scores["delta1"] = (ratio * valid).sum((1, 2)) / count
    solid = classes > 0
    cos = np.clip((pred["normals"] * gt["normals"]).sum(-1), -1.0, 1.0)
    angle = np.degrees(np.arccos(cos))
    solid_count = np.maximum(solid.sum((1, 2)), 1)
    for name, limit in (("normal_11", 11.25), ("normal_22", 22.5), ("normal_30", 30.0)):
        scores[name] = ((angle < limit) & solid).sum((1, 2)) / solid_count
    mse = ((pred["rgb"].astype(np.float64) - gt["rgb"].astype(np.float64)) ** 2).mean((1, 2, 3))
    scores["psnr"] = 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))
    scores["sharpness"] = _gradient(pred["rgb"]) / np.maximum(_gradient(gt["rgb"]), 1e-6)
    return scores


def _gradient(rgb_BHW3: np.ndarray) -> np.ndarray:
    """(B,) mean absolute horizontal + vertical difference of the images (a blur measure)."""
    x = rgb_BHW3.astype(np.float64)
    return np.abs(np.diff(x, axis=1)).mean((1, 2, 3)) + np.abs(np.diff(x, axis=2)).mean((1, 2, 3))
