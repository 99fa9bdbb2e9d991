"""Spatial-Markov neighbourhood attention inside one square token map, in pure torch (MVAR, 2026).

Each query at (row, col) of a side x side map attends to a kernel x kernel window of keys. As in NATTEN's
`na2d`, the window is centred on the query and shifted to stay inside the map at the borders, so every query
sees exactly kernel**2 keys; a kernel wider than the map is clamped to the map (the window is then the whole
map). `neighbourhood_mask` is the same pattern as a dense boolean mask (the training forward and the tests),
`neighbourhood_attention` computes it without the l x l score matrix: one gathered key/value slab per window
offset, so the working set is O(l * kernel**2) scores plus O(l * c), not O(l**2).

Axis legend: B batch, H heads, l = side * side tokens of the map (row-major), c head dim, n = kernel**2.
"""

from __future__ import annotations

import torch

__all__ = ["neighbour_indices", "neighbourhood_attention", "neighbourhood_mask"]


def _window_starts(side: int, kernel: int) -> torch.Tensor:
    """(side,) first row (or column) of each position's window: centred, shifted inside the map."""
    return (torch.arange(side) - kernel // 2).clamp(0, side - kernel)


def neighbour_indices(side: int, kernel: int) -> torch.Tensor:
    """(l, n) flat indices of the keys each query attends to, window offsets in row-major order."""
    k = min(kernel, side)
    rows = _window_starts(side, k)[:, None] + torch.arange(k)  # side, k: window rows (or columns) per position
    index = rows[:, None, :, None] * side + rows[None, :, None, :]  # row, col, dy, dx
    return index.reshape(side * side, k * k)


def neighbourhood_mask(side: int, kernel: int) -> torch.Tensor:
    """(l, l) boolean: True where query i may attend to key j."""
    tokens = side * side
    mask = torch.zeros(tokens, tokens, dtype=torch.bool)
    return mask.scatter_(1, neighbour_indices(side, kernel), True)


def neighbourhood_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, side: int, kernel: int, scale: float
) -> torch.Tensor:
    """softmax(scale * q k^T) v restricted to each query's window: q, k, v (B, H, l, c) -> (B, H, l, c)."""
    if q.shape[2] != side * side:
        raise ValueError(f"{q.shape[2]} tokens are not a {side}x{side} map")
    index = neighbour_indices(side, kernel).to(q.device)  # l, n
    n = index.shape[1]
    q = q * scale
    scores = q.new_empty(*q.shape[:3], n, dtype=torch.float32)  # B, H, l, n: written offset by offset
    for j in range(n):
        scores[..., j] = (q * k.index_select(2, index[:, j])).sum(-1)
    probs = scores.softmax(dim=-1).to(v.dtype)
    del scores
    out = torch.zeros_like(q, dtype=v.dtype)
    for j in range(n):
        out.addcmul_(probs[..., j, None], v.index_select(2, index[:, j]))
    return out
