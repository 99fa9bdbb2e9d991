"""The selective scan of M-VAR: the chunked form == the token-by-token reference, and a sequence fed in pieces
with the state carried == the same sequence fed at once (mixer included: convolution tail and scan state)."""

from __future__ import annotations

import pytest
import torch

from genmotion.image_core.mamba_scan import Mamba2Mixer, selective_scan_chunked, selective_scan_reference


def _inputs(L: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    B, H, P, N = 2, 3, 4, 5
    x = torch.randn(B, L, H, P, generator=g)
    dt = torch.nn.functional.softplus(torch.randn(B, L, H, generator=g))
    A = -torch.rand(H, generator=g).add(0.5)
    Bm, Cm = torch.randn(B, L, N, generator=g), torch.randn(B, L, N, generator=g)
    h0 = torch.randn(B, H, P, N, generator=g)
    return x, dt, A, Bm, Cm, h0


@pytest.mark.parametrize("chunk", [1, 3, 8, 64])
def test_chunked_scan_matches_reference(chunk: int) -> None:
    args = _inputs(L=21)
    y_ref, h_ref = selective_scan_reference(*args)
    y, h = selective_scan_chunked(*args, chunk=chunk)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, h_ref, atol=1e-5, rtol=1e-5)
    assert y.abs().max() > 0.1  # a real output, not zeros


def test_scan_in_pieces_matches_whole() -> None:
    x, dt, A, Bm, Cm, h0 = _inputs(L=30, seed=1)
    y_all, h_all = selective_scan_chunked(x, dt, A, Bm, Cm, h0, chunk=7)
    ys, h = [], h0
    for s, e in ((0, 1), (1, 5), (5, 14), (14, 30)):  # scales of 1, 4, 9, 16 tokens
        y, h = selective_scan_chunked(x[:, s:e], dt[:, s:e], A, Bm[:, s:e], Cm[:, s:e], h, chunk=7)
        ys.append(y)
    torch.testing.assert_close(torch.cat(ys, dim=1), y_all, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, h_all, atol=1e-5, rtol=1e-5)


def test_mixer_carried_state_matches_whole_sequence_and_reference() -> None:
    mixer = Mamba2Mixer(16, d_state=8, d_conv=4, expand=2, head_dim=8, chunk=4).eval()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in (mixer.in_proj.weight, mixer.conv1d.weight, mixer.out_proj.weight):
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    u = torch.randn(2, 1 + 4 + 9 + 16, 16, generator=torch.Generator().manual_seed(3))
    whole, end = mixer(u)
    ref, _ = mixer(u, reference=True)
    torch.testing.assert_close(whole, ref, atol=1e-5, rtol=1e-5)
    pieces, state = [], None
    for s, e in ((0, 1), (1, 5), (5, 14), (14, 30)):
        y, state = mixer(u[:, s:e], state)
        pieces.append(y)
    assert state is not None
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state.ssm, end.ssm, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state.conv, end.conv)
    # causal: the first tokens do not depend on later ones
    changed = u.clone()
    changed[:, 20:] += 1.0
    torch.testing.assert_close(mixer(changed)[0][:, :20], whole[:, :20])
    assert not torch.allclose(mixer(changed)[0][:, 20:], whole[:, 20:])


def test_chunk_must_be_positive() -> None:
    with pytest.raises(ValueError, match="chunk"):
        selective_scan_chunked(*_inputs(L=3), chunk=0)
