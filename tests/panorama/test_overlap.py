"""The overlapping output head: grown token cells are averaged where they overlap, and the data estimates of
neighbouring tokens meet at their shared boundary while the noise part stays per pixel."""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from panorama_tiny import TINY, tiny_pipeline

from genmotion.panorama.model import CubeComposerModel, overlap_add, patchify, unpatchify


def grown_cells(img: torch.Tensor, p: int, o: int) -> torch.Tensor:
    """Cells of an image (B, 3, n p, n p) grown by o pixels per side, cut from the image itself (zeros
    outside): (B, n^2, 3 (p + 2o)^2)."""
    cols = F.unfold(img, kernel_size=p + 2 * o, stride=p, padding=o)  # (B, 3 q q, n^2)
    return cols.transpose(1, 2)


def test_overlap_add_of_cells_cut_from_one_image_gives_the_image() -> None:
    p, o, n = 4, 1, 3
    img = torch.randn(2, 3, n * p, n * p)
    torch.testing.assert_close(overlap_add(grown_cells(img, p, o), p, o, n), patchify(img, p))
    # two cells that disagree on a shared pixel: the pixel is their mean
    tokens = torch.zeros(1, n * n, 3 * (p + 2 * o) ** 2)
    tokens[0, 0] = 1.0  # cell (0, 0) grown: it reaches one column into cell (0, 1)
    out = unpatchify(overlap_add(tokens, p, o, n)[0], p, n)
    assert float(out[0, 1, p]) == 0.5 and float(out[0, 1, p + 1]) == 0.0 and float(out[0, 1, 1]) == 1.0


def test_overlap_head_starts_from_the_plain_head_with_averaged_token_boundaries() -> None:
    plain = tiny_pipeline().model.eval()
    cfg = replace(TINY, overlap=1)
    model = CubeComposerModel(cfg).eval()
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and sorted(missing) == ["out_ring.bias", "out_ring.weight"]
    assert model.out_ring.weight.abs().sum() == 0  # zero-initialised ring offsets
    n, p, K = cfg.cells + 2 * cfg.pad_cells, cfg.patch, cfg.token_channels
    L = 2 * n * n
    g = torch.Generator().manual_seed(0)
    gen = torch.randn(1, L, 2 * K + p * p, generator=g)
    pos = torch.randn(1, L, 3, generator=g)
    slot = 6 * cfg.cells**2  # one frame slot of context, all of it invalid
    feats, pos_c = torch.randn(1, slot, K + p * p, generator=g), torch.zeros(1, slot, 3)
    none = (torch.zeros(1, slot, dtype=torch.long), torch.zeros(1, slot, dtype=torch.bool))
    ctx = plain.encode_context(feats, none[0], pos_c, none[1])
    t = torch.tensor([0.4])
    v0, v1 = plain.velocity(gen, t, pos, ctx), model.velocity(gen, t, pos, ctx)
    img = lambda v: unpatchify(v[0].reshape(2, n * n, K), p, n)  # (2, 3, n p, n p)
    x_t = gen[..., :K]
    x1_plain = img(x_t + 0.6 * v0)  # each token's data estimate x_t + (1 - t) v
    x1 = img(v1 + x_t - 0.4 * v0)  # the overlap head's velocity = its data estimate - the own noise estimate
    off = torch.ones(n * p, dtype=torch.bool)
    off[p - 1 :: p] = False
    off[p::p] = False  # pixels next to a token boundary
    torch.testing.assert_close(x1[..., off][..., off, :], x1_plain[..., off][..., off, :])
    row = 2  # inside a token row-wise; the column pair (p - 1, p) straddles a token boundary
    mean = 0.5 * (x1_plain[..., row, p - 1] + x1_plain[..., row, p])
    torch.testing.assert_close(x1[..., row, p - 1], mean)
    torch.testing.assert_close(x1[..., row, p], mean)
