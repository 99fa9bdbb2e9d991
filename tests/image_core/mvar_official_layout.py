"""The official M-VAR (OliverRensu/MVAR: models/mvar.py, basic_mvar.py, with mamba_ssm's Mamba2) key/shape inventory
and buffers, written down from the official code independently of genmotion's modules, and a reference forward of
its math on a plain state dict (attention within each scale, then Mamba2 run token by token as Mamba2.step does,
then the FFN)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from image_core_official_layout import Shape, random_state_dict, var_inventory


def mvar_inventory(
    *,
    depth: int,
    patch_nums: tuple[int, ...],
    width: int | None = None,
    num_classes: int = 1000,
    vocab: int = 4096,
    cvae: int = 32,
    attn_l2_norm: bool = True,
    d_state: int = 64,
    d_conv: int = 4,
    expand: int = 2,
    headdim: int = 64,
) -> dict[str, Shape]:
    """`MVAR(...).state_dict()` keys and shapes (build_vae_mvar: width 64 * depth, heads = depth; Mamba2(d_model=C,
    d_state=64, d_conv=4, expand=2) with its defaults headdim 64, ngroups 1, no in/out bias, conv bias)."""
    C = width or 64 * depth
    E, N = expand * C, d_state
    H = E // headdim
    inv = var_inventory(
        depth=depth, patch_nums=patch_nums, width=C, num_classes=num_classes, vocab=vocab, cvae=cvae,
        attn_l2_norm=attn_l2_norm,
    )  # fmt: skip
    for i in range(depth):
        b = f"blocks.{i}."
        inv[b + "ada_lin.1.weight"], inv[b + "ada_lin.1.bias"] = (9 * C, C), (9 * C,)
        inv[b + "attn.patch_nums"] = (len(patch_nums),)
        inv[b + "mamba.dt_bias"] = inv[b + "mamba.A_log"] = inv[b + "mamba.D"] = (H,)
        inv[b + "mamba.in_proj.weight"] = (2 * E + 2 * N + H, C)
        inv[b + "mamba.conv1d.weight"], inv[b + "mamba.conv1d.bias"] = (E + 2 * N, 1, d_conv), (E + 2 * N,)
        inv[b + "mamba.norm.weight"] = (E,)
        inv[b + "mamba.out_proj.weight"] = (C, E)
    return inv


def mvar_buffers(patch_nums: tuple[int, ...], depth: int) -> dict[str, torch.Tensor]:
    """lvl_1L, attn_bias_for_masking and each block's attn.patch_nums exactly as the official MVAR.__init__ builds
    them (the mask row by row from ones and zeros, then 0 -> -inf, 1 -> 0)."""
    L = sum(p * p for p in patch_nums)
    d = torch.cat([torch.full((pn * pn,), i) for i, pn in enumerate(patch_nums)]).view(1, L, 1)
    rows, start = [], 0
    for pz in patch_nums:
        start += pz**2
        n = pz * pz
        rows.append(torch.cat([torch.zeros(n, start - n), torch.ones(n, n), torch.zeros(n, L - start)], dim=-1))
    mask = torch.cat(rows, dim=0)
    mask = torch.where(mask == 0, -torch.inf, mask)
    mask = torch.where(mask == 1, 0, mask)
    out = {"lvl_1L": d.transpose(1, 2)[:, 0].contiguous(), "attn_bias_for_masking": mask[None, None].contiguous()}
    counts = torch.tensor([p * p for p in patch_nums]).int()
    out.update({f"blocks.{i}.attn.patch_nums": counts for i in range(depth)})
    return out


def random_mvar_state_dict(inventory: dict[str, Shape], seed: int, patch_nums: tuple[int, ...], depth: int) -> dict:
    """Random values of the inventory's shapes, the official buffers filled in."""
    sd = random_state_dict(inventory, seed)
    sd.update(mvar_buffers(patch_nums, depth))
    return sd


def mamba2_reference(sd: dict[str, torch.Tensor], p: str, u: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Mamba2 (ngroups 1, rmsnorm, norm_before_gate False) on u (B, L, C), token by token as `Mamba2.step`."""
    W, w, bias = sd[p + "in_proj.weight"], sd[p + "conv1d.weight"][:, 0], sd[p + "conv1d.bias"]
    E, H, conv_dim = sd[p + "out_proj.weight"].shape[1], sd[p + "A_log"].numel(), w.shape[0]
    N, P, Bsz = (conv_dim - E) // 2, E // H, u.shape[0]
    z, xBC, dt = F.linear(u, W).split((E, conv_dim, H), dim=-1)
    A = -torch.exp(sd[p + "A_log"])
    conv_state, ssm_state, ys = u.new_zeros(Bsz, conv_dim, w.shape[-1]), u.new_zeros(Bsz, H, P, N), []
    for t in range(u.shape[1]):
        conv_state = torch.roll(conv_state, shifts=-1, dims=-1)
        conv_state[:, :, -1] = xBC[:, t]
        xbc = F.silu((conv_state * w).sum(-1) + bias)
        x, Bt, Ct = xbc.split((E, N, N), dim=-1)
        dtt = F.softplus(dt[:, t] + sd[p + "dt_bias"])  # B, H
        x = x.view(Bsz, H, P)
        ssm_state = ssm_state * torch.exp(dtt * A)[..., None, None] + torch.einsum("bh,bn,bhp->bhpn", dtt, Bt, x)
        y = torch.einsum("bhpn,bn->bhp", ssm_state, Ct) + sd[p + "D"][:, None] * x
        ys.append(y.reshape(Bsz, E))
    y = torch.stack(ys, dim=1) * F.silu(z)
    y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + eps) * sd[p + "norm.weight"]
    return F.linear(y, sd[p + "out_proj.weight"])


def official_mvar_logits(
    sd: dict[str, torch.Tensor], label_B: torch.Tensor, x_BLCv: torch.Tensor, *, depth: int, attn_l2_norm: bool
) -> torch.Tensor:
    """MVAR.forward of the official code (attention masked to the own scale, no dropout) on a state dict."""
    C = sd["word_embed.weight"].shape[0]
    B, H, hd, first_l = label_B.shape[0], depth, C // depth, sd["pos_start"].shape[1]
    sos = cond = F.embedding(label_B, sd["class_emb.weight"])
    sos = sos.unsqueeze(1).expand(B, first_l, -1) + sd["pos_start"].expand(B, first_l, -1)
    x = torch.cat((sos, F.linear(x_BLCv, sd["word_embed.weight"], sd["word_embed.bias"])), dim=1)
    x = x + F.embedding(sd["lvl_1L"].expand(B, -1), sd["lvl_embed.weight"]) + sd["pos_1LC"]
    L = x.shape[1]
    for i in range(depth):
        p = f"blocks.{i}."
        ada = F.linear(F.silu(cond), sd[p + "ada_lin.1.weight"], sd[p + "ada_lin.1.bias"])
        g1, g2, g3, s1, s2, s3, b1, b2, b3 = ada.view(-1, 1, 9, C).unbind(2)
        h = F.layer_norm(x, (C,), eps=1e-6).mul(s1 + 1).add(b1)
        qkv_bias = torch.cat((sd[p + "attn.q_bias"], sd[p + "attn.zero_k_bias"], sd[p + "attn.v_bias"]))
        q, k, v = F.linear(h, sd[p + "attn.mat_qkv.weight"], qkv_bias).view(B, L, 3, H, hd).permute(2, 0, 3, 1, 4)
        if attn_l2_norm:
            scale = 1.0
            q = F.normalize(q, dim=-1).mul(sd[p + "attn.scale_mul_1H11"].clamp_max(math.log(100)).exp())
            k = F.normalize(k, dim=-1)
        else:
            scale = 0.25 / math.sqrt(hd)
        attn = (q.mul(scale) @ k.transpose(-2, -1) + sd["attn_bias_for_masking"]).softmax(dim=-1)
        o = (attn @ v).transpose(1, 2).reshape(B, L, C)
        x = x + F.linear(o, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"]).mul(g1)
        x = x + mamba2_reference(sd, p + "mamba.", F.layer_norm(x, (C,), eps=1e-6).mul(s2 + 1).add(b2)).mul(g2)
        h = F.layer_norm(x, (C,), eps=1e-6).mul(s3 + 1).add(b3)
        h = F.gelu(F.linear(h, sd[p + "ffn.fc1.weight"], sd[p + "ffn.fc1.bias"]), approximate="tanh")
        x = x + F.linear(h, sd[p + "ffn.fc2.weight"], sd[p + "ffn.fc2.bias"]).mul(g3)
    ada = F.linear(F.silu(cond), sd["head_nm.ada_lin.1.weight"], sd["head_nm.ada_lin.1.bias"])
    scale_, shift = ada.view(-1, 1, 2, C).unbind(2)
    return F.linear(F.layer_norm(x, (C,), eps=1e-6).mul(scale_ + 1).add(shift), sd["head.weight"], sd["head.bias"])
