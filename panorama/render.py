"""Output pixels at 1K / 2K / 4K: every output pixel looks up its direction once; where the input camera
saw it, the input frame's own pixel is projected at full resolution, elsewhere the generated cube faces
(the model's face size) are upsampled bilinearly (across face edges, through a one-pixel neighbour padding).
Work is done in bands of rows so memory stays bounded at 3840 x 1920.

Axes: S generated face size, h/w input size, N output pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from genmotion.data.toyworld.raycast import cube_face_directions, directions_to_cube, equirect_directions
from genmotion.panorama.export import CUBEMAP_3X2, OutputFormat
from genmotion.panorama.geometry import pad_faces_1px, sample_perspective

__all__ = ["PanoramaRenderer"]

_BAND = 1 << 20  # output pixels per band


class PanoramaRenderer:
    """Renders generated cubes + input frames to output frames of one format and size (width, height)."""

    def __init__(self, fmt: OutputFormat, size: tuple[int, int], face_size: int) -> None:
        width, height = size
        self.fmt, self.face_size = fmt, face_size
        if fmt == "cubemap":
            so = width // 4
            d = cube_face_directions(so)  # (6, so, so, 3)
            self.shape = (2 * so, 3 * so)
            self._faces_out = so
        else:
            d = equirect_directions(height, width)
            self.shape = (height, width)
            self._faces_out = 0
        self.dirs = d.reshape(-1, 3)
        face, row, col = directions_to_cube(self.dirs, face_size)
        S2 = face_size + 2
        x = (col + 1.5) / S2 * 2 - 1
        y = (row + 1.5 + face * S2) / (6 * S2) * 2 - 1
        self.grid = torch.stack([x, y], dim=-1)  # (N, 2) into the tall padded cube

    def frame(self, cube_63SS: torch.Tensor, image_3hw: torch.Tensor, fov: float, rotation: torch.Tensor) -> np.ndarray:
        """One output frame, uint8 (H, W, 3) (the cubemap in its 3 x 2 layout)."""
        S2 = self.face_size + 2
        tall = pad_faces_1px(cube_63SS[None].float())[0].permute(1, 0, 2, 3).reshape(1, 3, 6 * S2, S2)
        img = image_3hw[None].float()
        R = rotation.float()[None]
        out = torch.empty(self.dirs.shape[0], 3, dtype=torch.uint8)
        for a in range(0, self.dirs.shape[0], _BAND):
            b = min(a + _BAND, self.dirs.shape[0])
            gen = F.grid_sample(tall, self.grid[None, None, a:b], mode="bilinear", align_corners=False)[0, :, 0]
            seen, m = sample_perspective(img, self.dirs[None, a:b] @ R, fov)
            pix = seen[0] + (1 - m[0]) * gen
            out[a:b] = pix.T.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
        if self.fmt != "cubemap":
            return out.reshape(*self.shape, 3).numpy()
        so = self._faces_out
        faces = out.reshape(6, so, so, 3)
        cells = [torch.rot90(faces[f], k, dims=(0, 1)) for f, k in CUBEMAP_3X2]
        return torch.cat([torch.cat(cells[:3], dim=1), torch.cat(cells[3:], dim=1)], dim=0).numpy()
