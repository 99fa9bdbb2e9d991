"""Temporal residual coding for VideoAR's tokenizer: frame 0 is coded on its own (an intra frame); every later
frame codes only what changed since the previous frame's quantised latent (a predicted frame, as video codecs do).

Frame t: r_t = f_t - base_t with base_0 = 0 and base_t = f_hat_{t-1}; r_t is quantised by VAR's multi-scale
residual quantiser (coarse to fine, nearest code, bicubic upsampling) and f_hat_t = base_t + sum of the codes.
Code 0 is pinned to the zero vector and a dead zone sends every token whose residual is small (mean square
per channel below `deadzone`) to it, so what does not change between frames is coded as "no change" and is
copied exactly when decoded or generated. The chain is closed-loop: base_t is the *quantised* previous frame,
so coding errors never accumulate. Requires phi = identity (`quant_resi: 0`): a code map then adds nothing
but itself, and code 0 adds nothing at all.

Axes: B clips, T frames, C latent channels, H/W finest latent size, l tokens of one scale (pn * pn).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "ClipCodes",
    "TeacherForcing",
    "code_residual",
    "pinned_codebook",
    "quantize_clip",
    "scale_inputs",
    "teacher_forcing",
]


def pinned_codebook(weight_VC: torch.Tensor) -> torch.Tensor:
    """The codebook (V, C) with code 0 forced to zero (no gradient reaches that row)."""
    return torch.cat([torch.zeros_like(weight_VC[:1]), weight_VC[1:]])


def nearest_codes(codebook_VC: torch.Tensor, z_NC: torch.Tensor, deadzone: float = 0.0) -> torch.Tensor:
    """Nearest code (L2) per row (N, C) -> (N,); rows with mean square below `deadzone` get code 0."""
    dist = z_NC.square().sum(1, keepdim=True) + codebook_VC.square().sum(1) - 2 * z_NC @ codebook_VC.T
    idx = dist.argmin(1)
    if deadzone > 0:
        idx = torch.where(z_NC.square().mean(1) < deadzone, torch.zeros_like(idx), idx)
    return idx


def _code_map(codebook_VC: torch.Tensor, idx_Bl: torch.Tensor, pn: int, size: int) -> torch.Tensor:
    """Codes (B, pn * pn) -> their map upsampled to the finest size (B, C, size, size)."""
    B, C = idx_Bl.shape[0], codebook_VC.shape[1]
    h = codebook_VC[idx_Bl].view(B, pn, pn, C).permute(0, 3, 1, 2)
    return h if pn == size else F.interpolate(h, size=(size, size), mode="bicubic")


@dataclass(frozen=True)
class FrameCode:
    """One frame's residual coding: per-scale codes (B, l), the code sum (B, C, H, W), the VQ loss terms
    (commitment + codebook, summed over scales; 0 unless asked) and the residual seen by each scale
    (N_s rows of (B * l, C), for dead-code restarts)."""

    indices: list[torch.Tensor]
    coded: torch.Tensor
    vq_loss: torch.Tensor
    residuals: list[torch.Tensor]


def code_residual(
    codebook_VC: torch.Tensor,
    patch_nums: Sequence[int],
    r_BCHW: torch.Tensor,
    *,
    deadzone: float,
    flip_rate_B: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    beta: float = 0.25,
    with_loss: bool = False,
) -> FrameCode:
    """Multi-scale residual quantisation of r (B, C, H, W). `flip_rate_B`: each code is replaced by a random
    one with that probability per row, the finer scales then code what that error left (cross-frame error
    correction). `with_loss`: VAR's VQ loss averaged over scales (gradients reach the codebook)."""
    B, C, H, _ = r_BCHW.shape
    target = r_BCHW.detach().float()
    rest, coded = target.clone(), torch.zeros_like(target)
    loss = target.new_zeros(())
    indices, residuals = [], []
    for pn in patch_nums:
        down = rest if pn == H else F.interpolate(rest, size=(pn, pn), mode="area")
        rows = down.permute(0, 2, 3, 1).reshape(-1, C)
        idx = nearest_codes(codebook_VC.detach().float(), rows, deadzone).view(B, pn * pn)
        if flip_rate_B is not None:
            flip = torch.rand(idx.shape, generator=generator) < flip_rate_B[:, None].cpu()
            random = torch.randint(1, codebook_VC.shape[0], idx.shape, generator=generator)
            idx = torch.where(flip.to(idx.device), random.to(idx.device), idx)
        h = _code_map(codebook_VC if with_loss else codebook_VC.detach().float(), idx, pn, H)
        coded = coded + h
        rest = rest - h.detach()
        if with_loss:  # commitment pulls the encoder (through r) to the codes, the codebook term the codes to r
            loss = loss + beta * F.mse_loss(coded.detach(), r_BCHW.float()) + F.mse_loss(coded, target)
        indices.append(idx)
        residuals.append(rows)
    return FrameCode(indices, coded, loss / len(patch_nums), residuals)


@dataclass(frozen=True)
class ClipCodes:
    """A clip's coding: per-scale codes (B, T, l), f_hat (B, T, C, H, W), each frame's base (f_hat of the frame
    before; zeros at frame 0), the VQ loss (mean over frames) and per-scale residual rows for restarts."""

    indices: list[torch.Tensor]
    fhat: torch.Tensor
    base: torch.Tensor
    vq_loss: torch.Tensor
    residuals: list[torch.Tensor]


def quantize_clip(
    codebook_VC: torch.Tensor,
    patch_nums: Sequence[int],
    f_BTCHW: torch.Tensor,
    *,
    deadzone: float,
    straight_through: bool = False,
    beta: float = 0.25,
) -> ClipCodes:
    """Closed-loop temporal residual coding of latents (B, T, C, H, W). `straight_through`: f_hat carries the
    encoder's gradient (identity, as VAR's straight-through estimator) and the VQ loss is computed."""
    B, T = f_BTCHW.shape[:2]
    base = torch.zeros_like(f_BTCHW[:, 0].float())
    fhats, bases, per_frame, losses = [], [], [], []
    residual_rows: list[list[torch.Tensor]] = [[] for _ in patch_nums]
    for t in range(T):
        f = f_BTCHW[:, t].float()
        code = code_residual(
            codebook_VC, patch_nums, f - base, deadzone=deadzone, beta=beta, with_loss=straight_through
        )
        fhat = base + code.coded
        if straight_through:  # value f_hat, gradient of f (the base and the codes are constants for the encoder)
            fhat = fhat + (f - f.detach())
        bases.append(base)
        fhats.append(fhat)
        per_frame.append(code.indices)
        losses.append(code.vq_loss)
        for rows, r in zip(residual_rows, code.residuals, strict=True):
            rows.append(r)
        base = fhat.detach()
    indices = [torch.stack([frame[si] for frame in per_frame], dim=1) for si in range(len(patch_nums))]
    return ClipCodes(
        indices=indices,
        fhat=torch.stack(fhats, dim=1),
        base=torch.stack(bases, dim=1),
        vq_loss=torch.stack(losses).mean(),
        residuals=[torch.cat(rows) for rows in residual_rows],
    )


def scale_inputs(
    codebook_VC: torch.Tensor, patch_nums: Sequence[int], indices: Sequence[torch.Tensor], base_NCHW: torch.Tensor
) -> torch.Tensor:
    """Teacher-forcing inputs of the transformer for frames coded against `base` (N, C, H, W): for each scale
    after the first, base + the codes of the coarser scales, area-downsampled to that scale -> (N, L - 1, C).
    Codes are per scale (N, l)."""
    N, C, H, _ = base_NCHW.shape
    acc = base_NCHW.float()
    out = []
    for si in range(len(patch_nums) - 1):
        acc = acc + _code_map(codebook_VC, indices[si], patch_nums[si], H)
        nxt = patch_nums[si + 1]
        out.append(F.interpolate(acc, size=(nxt, nxt), mode="area").view(N, C, -1).transpose(1, 2))
    return torch.cat(out, dim=1) if out else base_NCHW.new_zeros(N, 0, C)


@dataclass(frozen=True)
class TeacherForcing:
    """What VideoAR's training pass reads for a clip coded with temporal residuals, frames flattened (N = B * T,
    clip-major): target codes per scale (N, l) against each frame's base; next-scale inputs (N, L - 1, C);
    the clean context latents (N, C, H, W) and their codes, both after cross-frame error injection."""

    targets: list[torch.Tensor]
    inputs: torch.Tensor
    context: torch.Tensor
    context_codes: list[torch.Tensor]


def _flat(frames: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(frames, dim=1).flatten(0, 1)  # T x (B, ...) -> (B * T, ...)


@torch.no_grad()
def teacher_forcing(
    codebook_VC: torch.Tensor,
    patch_nums: Sequence[int],
    f_BTCHW: torch.Tensor,
    *,
    deadzone: float,
    rate_B: torch.Tensor,
    generator: torch.Generator | None = None,
) -> TeacherForcing:
    """Closed-loop coding of a clip as the sampler meets it: each frame's base is the previous frame's latent
    *as it was coded with errors* (codes replaced at rate_B[b], cross-frame error correction), its targets are
    the clean codes of its change from that base, so the model learns to repair what it inherits."""
    B, T = f_BTCHW.shape[:2]
    codebook = codebook_VC.detach().float()
    base = torch.zeros_like(f_BTCHW[:, 0].float())
    targets: list[list[torch.Tensor]] = [[] for _ in patch_nums]
    used: list[list[torch.Tensor]] = [[] for _ in patch_nums]
    inputs, context = [], []
    noisy = bool((rate_B > 0).any())
    for t in range(T):
        r = f_BTCHW[:, t].float() - base
        clean = code_residual(codebook, patch_nums, r, deadzone=deadzone)
        if noisy:
            err = code_residual(codebook, patch_nums, r, deadzone=deadzone, flip_rate_B=rate_B, generator=generator)
        else:
            err = clean
        inputs.append(scale_inputs(codebook, patch_nums, clean.indices, base))
        for si in range(len(patch_nums)):
            targets[si].append(clean.indices[si])
            used[si].append(err.indices[si])
        base = base + err.coded
        context.append(base)
    return TeacherForcing(
        targets=[_flat(s) for s in targets],
        inputs=_flat(inputs),
        context=_flat(context),
        context_codes=[_flat(s) for s in used],
    )
