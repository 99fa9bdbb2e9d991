"""A Mamba2-style selective state-space mixer in pure torch, with the state carried from call to call.

Follows Mamba2 (Dao & Gu, 2024): input-dependent step dt, input and output projections B and C shared by the
heads, a scalar decay per head (A = -exp(A_log)), a depthwise causal convolution before the scan, a gate, and
a gated RMSNorm. `mamba_ssm` is CUDA-only, so the scan is written here twice: `selective_scan_reference` (the
recurrence, one step per token) and `selective_scan_chunked` (the chunked "SSD" form: quadratic inside a
chunk, the state passed between chunks), which agree to float rounding. Both start from a given state and
return the final one, so a sequence fed in pieces gives what it gives fed at once: the M-VAR sampler carries
the state from scale to scale and never re-runs earlier scales.

Axis legend: B batch, L tokens of this call, C model width, E inner width (expand * C), H scan heads, P head
dim (E = H * P), N state size, K convolution width, Q chunk length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Mamba2Mixer", "ScanState", "selective_scan_chunked", "selective_scan_reference"]


@dataclass(frozen=True)
class ScanState:
    """What a mixer carries to the next call: the last K - 1 convolution inputs conv (B, K - 1, E + 2N) and the
    scan state ssm (B, H, P, N). A fresh state is zeros: the sequence starts here."""

    conv: torch.Tensor
    ssm: torch.Tensor

    def nbytes(self) -> int:
        return self.conv.nbytes + self.ssm.nbytes


def selective_scan_reference(
    x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, h: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The recurrence, token by token: h_t = exp(dt_t A) h_t-1 + dt_t x_t B_t^T, y_t = h_t C_t.

    x (B, L, H, P), dt (B, L, H) > 0, A (H,) < 0, B and C (B, L, N), h (B, H, P, N) the state before token 0.
    Returns y (B, L, H, P) and the state after the last token.
    """
    ys = []
    for t in range(x.shape[1]):
        decay = torch.exp(dt[:, t] * A)  # B, H
        h = h * decay[:, :, None, None] + (dt[:, t, :, None] * x[:, t])[..., None] * B[:, t, None, None, :]
        ys.append(torch.einsum("bhpn,bn->bhp", h, C[:, t]))
    y = torch.stack(ys, dim=1) if ys else x.new_zeros(x.shape)
    return y, h


def selective_scan_chunked(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    h: torch.Tensor,
    chunk: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`selective_scan_reference` in chunks of `chunk` tokens: inside a chunk the outputs are one masked
    matrix product (token i reads token j <= i with weight (C_i . B_j) exp(a_j+1 + ... + a_i) dt_j, a = dt A),
    plus the state entering the chunk decayed to i; the state is then advanced once per chunk. Same shapes."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    a = dt * A  # B, L, H: log of each token's decay (<= 0)
    xdt = x * dt[..., None]  # B, L, H, P
    ys = []
    for s in range(0, x.shape[1], chunk):
        e = min(s + chunk, x.shape[1])
        cum = a[:, s:e].cumsum(dim=1)  # B, Q, H: log decay from the chunk start to each token (inclusive)
        Q = e - s
        causal = torch.ones(Q, Q, dtype=torch.bool, device=x.device).tril()
        seg = (cum[:, :, None, :] - cum[:, None, :, :]).masked_fill(~causal[None, :, :, None], -math.inf)
        weights = torch.einsum("bin,bjn->bij", C[:, s:e], B[:, s:e])[..., None] * seg.exp()  # B, Q(i), Q(j), H
        y = torch.einsum("bijh,bjhp->bihp", weights, xdt[:, s:e])
        y = y + torch.einsum("bin,bhpn->bihp", C[:, s:e], h) * cum.exp()[..., None]  # the entering state
        to_end = (cum[:, -1:, :] - cum).exp()  # B, Q, H: decay from each token to the chunk end
        h = h * cum[:, -1].exp()[:, :, None, None] + torch.einsum("bjh,bjhp,bjn->bhpn", to_end, xdt[:, s:e], B[:, s:e])
        ys.append(y)
    y = torch.cat(ys, dim=1) if ys else x.new_zeros(x.shape)
    return y, h


class Mamba2Mixer(nn.Module):
    """in_proj -> (gate z, conv input xBC, step dt); causal depthwise conv + SiLU on xBC -> (x, B, C); the
    selective scan with skip D; gated RMSNorm; out_proj. `forward(u, state)` -> (y, state after u)."""

    def __init__(
        self, width: int, *, d_state: int, d_conv: int, expand: int, head_dim: int, chunk: int, norm_eps: float = 1e-5
    ) -> None:
        super().__init__()
        inner = expand * width
        if inner % head_dim:
            raise ValueError(f"expand * width = {inner} is not a multiple of the scan head dim {head_dim}")
        self.inner, self.d_state, self.d_conv, self.chunk = inner, d_state, d_conv, chunk
        self.num_heads, self.head_dim = inner // head_dim, head_dim
        self.conv_channels = inner + 2 * d_state
        self.in_proj = nn.Linear(width, 2 * inner + 2 * d_state + self.num_heads, bias=False)
        self.conv1d = nn.Conv1d(self.conv_channels, self.conv_channels, d_conv, groups=self.conv_channels)
        # Deterministic spreads over the heads (no RNG here): decay rates 1..16 and steps 1e-3..1e-1.
        H = self.num_heads
        self.A_log = nn.Parameter(torch.linspace(1.0, 16.0, H).log())
        steps = torch.logspace(math.log10(1e-3), math.log10(1e-1), H)
        self.dt_bias = nn.Parameter(steps + torch.log(-torch.expm1(-steps)))  # softplus(dt_bias) = steps
        self.D = nn.Parameter(torch.ones(H))
        self.norm_weight = nn.Parameter(torch.ones(inner))
        self.norm_eps = norm_eps
        self.out_proj = nn.Linear(inner, width, bias=False)

    def new_state(self, batch: int, *, dtype: torch.dtype, device: torch.device | str | None) -> ScanState:
        """Zeros: the state before the first token."""
        conv = torch.zeros(batch, self.d_conv - 1, self.conv_channels, dtype=dtype, device=device)
        ssm = torch.zeros(batch, self.num_heads, self.head_dim, self.d_state, dtype=torch.float32, device=device)
        return ScanState(conv=conv, ssm=ssm)

    def _conv(self, xBC: torch.Tensor, tail: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Causal depthwise conv of (B, L, E + 2N) after the carried tail (B, K - 1, E + 2N); new tail."""
        padded = torch.cat((tail.to(xBC.dtype), xBC), dim=1)  # B, K - 1 + L, E + 2N
        out = F.conv1d(padded.transpose(1, 2), self.conv1d.weight, self.conv1d.bias, groups=self.conv_channels)
        return F.silu(out.transpose(1, 2)), padded[:, padded.shape[1] - (self.d_conv - 1) :]

    def forward(
        self, u_BLC: torch.Tensor, state: ScanState | None = None, *, reference: bool = False
    ) -> tuple[torch.Tensor, ScanState]:
        """u (B, L, C) -> y (B, L, C) and the state after u; `state` None starts a sequence. `reference` runs
        the token-by-token scan instead of the chunked one (for tests)."""
        Bsz, L, _ = u_BLC.shape
        if state is None:
            state = self.new_state(Bsz, dtype=u_BLC.dtype, device=u_BLC.device)
        E, N, H, P = self.inner, self.d_state, self.num_heads, self.head_dim
        z, xBC, dt = self.in_proj(u_BLC).split((E, E + 2 * N, H), dim=-1)
        xBC, tail = self._conv(xBC, state.conv)
        x, B, C = xBC.split((E, N, N), dim=-1)
        # The scan runs in fp32: the decays are products of many factors close to 1.
        dt = F.softplus(dt.float() + self.dt_bias.float())  # B, L, H
        A = -self.A_log.float().exp()  # H
        x4 = x.float().view(Bsz, L, H, P)
        args = (x4, dt, A, B.float(), C.float(), state.ssm.float())
        if reference:
            y, ssm = selective_scan_reference(*args)
        else:
            y, ssm = selective_scan_chunked(*args, chunk=self.chunk)
        y = y + x4 * self.D.float()[:, None]  # B, L, H, P
        y = y.reshape(Bsz, L, E) * F.silu(z.float())
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.norm_eps) * self.norm_weight.float()
        return self.out_proj(y.to(u_BLC.dtype)), ScanState(conv=tail, ssm=ssm)
