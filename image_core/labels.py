"""Class labels of the class-conditional image samplers: checked, and doubled with the null class under guidance."""

from __future__ import annotations

import torch

from genmotion.errors import UsageError

__all__ = ["check_labels", "guided_labels"]


def check_labels(labels_B: torch.Tensor, num_classes: int) -> None:
    """Class ids (B,) must be integers in [0, num_classes] (`num_classes` = the null class); else a UsageError."""
    if labels_B.ndim != 1 or labels_B.dtype not in (torch.int32, torch.int64):
        raise UsageError(f"class labels must be a 1-D integer tensor, got {labels_B.dtype} {tuple(labels_B.shape)}")
    if labels_B.numel() and (int(labels_B.min()) < 0 or int(labels_B.max()) > num_classes):
        raise UsageError(
            f"class labels must lie in [0, {num_classes}], got {labels_B.tolist()}",
            why=f"the model knows {num_classes} classes; {num_classes} itself is the null (unconditional) class",
        )


def guided_labels(labels_B: torch.Tensor, num_classes: int, guidance_scale: float) -> tuple[torch.Tensor, bool]:
    """Checked labels (B,) -> the rows to run, (2B,) with the null class `num_classes` below when guidance is on
    (`guidance_scale` != 1), else (B,); and whether it is on."""
    check_labels(labels_B, num_classes)
    guided = guidance_scale != 1.0
    return (torch.cat((labels_B, torch.full_like(labels_B, num_classes))) if guided else labels_B), guided
