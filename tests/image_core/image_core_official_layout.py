"""The official VAR key/shape inventory, written down from FoundationVision/VAR (models/var.py,
basic_var.py, vqvae.py, basic_vae.py, quant.py) independently of genmotion's modules, plus builders
of official-layout state dicts for tests (random values, buffers as the official code computes them).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Shape = tuple[int, ...]


def var_inventory(
    *,
    depth: int,
    patch_nums: tuple[int, ...],
    width: int | None = None,
    num_classes: int = 1000,
    vocab: int = 4096,
    cvae: int = 32,
    shared_aln: bool = False,
    attn_l2_norm: bool = True,
) -> dict[str, Shape]:
    """`VAR(...).state_dict()` keys and shapes (build_vae_var: width = 64 * depth, heads = depth)."""
    C = width or 64 * depth
    L, first_l = sum(p * p for p in patch_nums), patch_nums[0] ** 2
    inv: dict[str, Shape] = {
        "pos_start": (1, first_l, C),
        "pos_1LC": (1, L, C),
        "lvl_1L": (1, L),
        "attn_bias_for_masking": (1, 1, L, L),
        "word_embed.weight": (C, cvae),
        "word_embed.bias": (C,),
        "class_emb.weight": (num_classes + 1, C),
        "lvl_embed.weight": (len(patch_nums), C),
    }
    if shared_aln:
        inv["shared_ada_lin.1.weight"] = (6 * C, C)
        inv["shared_ada_lin.1.bias"] = (6 * C,)
    for i in range(depth):
        b = f"blocks.{i}."
        if attn_l2_norm:
            inv[b + "attn.scale_mul_1H11"] = (1, depth, 1, 1)
        inv[b + "attn.q_bias"] = (C,)
        inv[b + "attn.v_bias"] = (C,)
        inv[b + "attn.zero_k_bias"] = (C,)
        inv[b + "attn.mat_qkv.weight"] = (3 * C, C)
        inv[b + "attn.proj.weight"] = (C, C)
        inv[b + "attn.proj.bias"] = (C,)
        inv[b + "ffn.fc1.weight"] = (4 * C, C)
        inv[b + "ffn.fc1.bias"] = (4 * C,)
        inv[b + "ffn.fc2.weight"] = (C, 4 * C)
        inv[b + "ffn.fc2.bias"] = (C,)
        if shared_aln:
            inv[b + "ada_gss"] = (1, 1, 6, C)
        else:
            inv[b + "ada_lin.1.weight"] = (6 * C, C)
            inv[b + "ada_lin.1.bias"] = (6 * C,)
    inv["head_nm.ada_lin.1.weight"] = (2 * C, C)
    inv["head_nm.ada_lin.1.bias"] = (2 * C,)
    inv["head.weight"] = (vocab, C)
    inv["head.bias"] = (vocab,)
    return inv


def _resnet(inv: dict[str, Shape], prefix: str, cin: int, cout: int) -> None:
    inv[prefix + "norm1.weight"] = inv[prefix + "norm1.bias"] = (cin,)
    inv[prefix + "conv1.weight"], inv[prefix + "conv1.bias"] = (cout, cin, 3, 3), (cout,)
    inv[prefix + "norm2.weight"] = inv[prefix + "norm2.bias"] = (cout,)
    inv[prefix + "conv2.weight"], inv[prefix + "conv2.bias"] = (cout, cout, 3, 3), (cout,)
    if cin != cout:
        inv[prefix + "nin_shortcut.weight"], inv[prefix + "nin_shortcut.bias"] = (cout, cin, 1, 1), (cout,)


def _attn(inv: dict[str, Shape], prefix: str, c: int) -> None:
    inv[prefix + "norm.weight"] = inv[prefix + "norm.bias"] = (c,)
    inv[prefix + "qkv.weight"], inv[prefix + "qkv.bias"] = (3 * c, c, 1, 1), (3 * c,)
    inv[prefix + "proj_out.weight"], inv[prefix + "proj_out.bias"] = (c, c, 1, 1), (c,)


def ldm_inventory(
    *, ch: int, ch_mult: tuple[int, ...], num_res_blocks: int, z: int, down: str, up: str, res: str,
    mid: tuple[str, str, str], attn: Callable[[dict[str, Shape], str, int], None] | None = None,
) -> dict[str, Shape]:  # fmt: skip
    """The LDM vq-f16 encoder/decoder (attention at the lowest level and in the middle) that VAR's and LlamaGen's
    tokenizers share, under a layout's names: `down`/`up` format a level's prefix from (level, list index), `res`
    names its res-block list, `mid` the middle's three modules, `attn` an attention block's keys; z = the width
    of the encoder output and decoder input."""
    attn = attn or _attn
    inv: dict[str, Shape] = {}
    last = len(ch_mult) - 1
    inv["encoder.conv_in.weight"], inv["encoder.conv_in.bias"] = (ch, 3, 3, 3), (ch,)
    block_in = ch
    for lvl, m in enumerate(ch_mult):
        p = "encoder." + down.format(level=lvl, index=lvl)
        for i in range(num_res_blocks):
            _resnet(inv, f"{p}{res}.{i}.", block_in, ch * m)
            block_in = ch * m
            if lvl == last:
                attn(inv, f"{p}attn.{i}.", block_in)
        if lvl != last:
            inv[f"{p}downsample.conv.weight"], inv[f"{p}downsample.conv.bias"] = (block_in, block_in, 3, 3), (block_in,)
    for side in ("encoder", "decoder"):
        top = ch * ch_mult[last]
        _resnet(inv, f"{side}.mid.{mid[0]}.", top, top)
        attn(inv, f"{side}.mid.{mid[1]}.", top)
        _resnet(inv, f"{side}.mid.{mid[2]}.", top, top)
    inv["encoder.norm_out.weight"] = inv["encoder.norm_out.bias"] = (block_in,)
    inv["encoder.conv_out.weight"], inv["encoder.conv_out.bias"] = (z, block_in, 3, 3), (z,)
    block_in = ch * ch_mult[last]
    inv["decoder.conv_in.weight"], inv["decoder.conv_in.bias"] = (block_in, z, 3, 3), (block_in,)
    for j, lvl in enumerate(reversed(range(len(ch_mult)))):
        p = "decoder." + up.format(level=lvl, index=j)
        for i in range(num_res_blocks + 1):
            _resnet(inv, f"{p}{res}.{i}.", block_in, ch * ch_mult[lvl])
            block_in = ch * ch_mult[lvl]
            if lvl == last:
                attn(inv, f"{p}attn.{i}.", block_in)
        if lvl != 0:
            inv[f"{p}upsample.conv.weight"], inv[f"{p}upsample.conv.bias"] = (block_in, block_in, 3, 3), (block_in,)
    inv["decoder.norm_out.weight"] = inv["decoder.norm_out.bias"] = (block_in,)
    inv["decoder.conv_out.weight"], inv["decoder.conv_out.bias"] = (3, block_in, 3, 3), (3,)
    return inv


def vae_inventory(
    *,
    vocab: int = 4096,
    cvae: int = 32,
    ch: int = 160,
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4),
    num_res_blocks: int = 2,
    num_scales: int = 10,
    share_quant_resi: int = 4,
) -> dict[str, Shape]:
    """`VQVAE(...).state_dict()` keys and shapes (LDM vq-f16 encoder/decoder, attention at the lowest level)."""
    inv = ldm_inventory(ch=ch, ch_mult=ch_mult, num_res_blocks=num_res_blocks, z=cvae, down="down.{level}.",
                        up="up.{level}.", res="block", mid=("block_1", "attn_1", "block_2"))  # fmt: skip
    inv["quantize.ema_vocab_hit_SV"] = (num_scales, vocab)
    inv["quantize.embedding.weight"] = (vocab, cvae)
    for i in range(share_quant_resi):
        inv[f"quantize.quant_resi.qresi_ls.{i}.weight"] = (cvae, cvae, 3, 3)
        inv[f"quantize.quant_resi.qresi_ls.{i}.bias"] = (cvae,)
    for conv in ("quant_conv", "post_quant_conv"):
        inv[f"{conv}.weight"], inv[f"{conv}.bias"] = (cvae, cvae, 3, 3), (cvae,)
    return inv


def official_buffers(patch_nums: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """lvl_1L and attn_bias_for_masking exactly as the official VAR.__init__ builds them."""
    L = sum(p * p for p in patch_nums)
    d = torch.cat([torch.full((pn * pn,), i) for i, pn in enumerate(patch_nums)]).view(1, L, 1)
    dT = d.transpose(1, 2)
    return {
        "lvl_1L": dT[:, 0].contiguous(),
        "attn_bias_for_masking": torch.where(d >= dT, 0.0, -torch.inf).reshape(1, 1, L, L).contiguous(),
    }


def random_state_dict(inventory: dict[str, Shape], seed: int, patch_nums: tuple[int, ...] | None = None) -> dict:
    """Random values of the given shapes (scaled small), with VAR's buffers filled in as the official code does."""
    g = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(shape, generator=g) * 0.1 for k, shape in inventory.items()}
    for k in sd:
        if k.endswith("zero_k_bias"):
            sd[k] = torch.zeros(inventory[k])
        if k.startswith("quantize.ema_vocab_hit_SV"):
            sd[k] = sd[k].abs()
    if patch_nums is not None:
        sd.update(official_buffers(patch_nums))
    return sd


def official_var_logits(
    sd: dict[str, torch.Tensor],
    label_B: torch.Tensor,
    x_BLCv: torch.Tensor,
    *,
    depth: int,
    attn_l2_norm: bool = True,
    shared_aln: bool = False,
    eps: float = 1e-6,
) -> torch.Tensor:
    """VAR.forward of the official code (slow-attention path, no dropout), written with plain ops on a state dict."""
    import torch.nn.functional as F

    B, first_l = label_B.shape[0], sd["pos_start"].shape[1]
    sos = cond = F.embedding(label_B, sd["class_emb.weight"])
    sos = sos.unsqueeze(1).expand(B, first_l, -1) + sd["pos_start"].expand(B, first_l, -1)
    x = torch.cat((sos, F.linear(x_BLCv, sd["word_embed.weight"], sd["word_embed.bias"])), dim=1)
    x = x + F.embedding(sd["lvl_1L"].expand(B, -1), sd["lvl_embed.weight"]) + sd["pos_1LC"]
    blocks = [f"blocks.{i}." for i in range(depth)]
    x = official_blocks(sd, x, cond, sd["attn_bias_for_masking"], blocks, heads=depth, attn_l2_norm=attn_l2_norm,
                        shared_aln=shared_aln, eps=eps)  # fmt: skip
    return official_head(sd, x, cond, "head", eps=eps)


def official_blocks(
    sd: dict[str, torch.Tensor],
    x: torch.Tensor,
    cond: torch.Tensor,
    bias: torch.Tensor,
    prefixes: list[str],
    *,
    heads: int,
    attn_l2_norm: bool = True,
    shared_aln: bool = False,
    eps: float = 1e-6,
) -> torch.Tensor:
    """The official AdaLNSelfAttn blocks named by `prefixes` (e.g. "blocks.0."), in order, on x (B, L, C)."""
    import math

    import torch.nn.functional as F

    B, L, C = x.shape
    H, hd = heads, C // heads
    if shared_aln:
        gss = F.linear(F.silu(cond), sd["shared_ada_lin.1.weight"], sd["shared_ada_lin.1.bias"]).view(-1, 1, 6, C)
    for p in prefixes:
        if shared_aln:
            g1, g2, s1, s2, sh1, sh2 = (sd[p + "ada_gss"] + gss).unbind(2)
        else:
            ada = F.linear(F.silu(cond), sd[p + "ada_lin.1.weight"], sd[p + "ada_lin.1.bias"])
            g1, g2, s1, s2, sh1, sh2 = ada.view(-1, 1, 6, C).unbind(2)
        h = F.layer_norm(x, (C,), eps=eps).mul(s1 + 1).add(sh1)
        qkv_bias = torch.cat((sd[p + "attn.q_bias"], sd[p + "attn.zero_k_bias"], sd[p + "attn.v_bias"]))
        qkv = F.linear(h, sd[p + "attn.mat_qkv.weight"], qkv_bias).view(B, L, 3, H, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if attn_l2_norm:
            scale = 1.0
            q = F.normalize(q, dim=-1).mul(sd[p + "attn.scale_mul_1H11"].clamp_max(math.log(100)).exp())
            k = F.normalize(k, dim=-1)
        else:
            scale = 0.25 / math.sqrt(hd)
        attn = (q.mul(scale) @ k.transpose(-2, -1) + bias).softmax(dim=-1)
        o = (attn @ v).transpose(1, 2).reshape(B, L, C)
        x = x + F.linear(o, sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"]).mul(g1)
        h = F.layer_norm(x, (C,), eps=eps).mul(s2 + 1).add(sh2)
        h = F.gelu(F.linear(h, sd[p + "ffn.fc1.weight"], sd[p + "ffn.fc1.bias"]), approximate="tanh")
        x = x + F.linear(h, sd[p + "ffn.fc2.weight"], sd[p + "ffn.fc2.bias"]).mul(g2)
    return x


def official_head(
    sd: dict[str, torch.Tensor], x: torch.Tensor, cond: torch.Tensor, head: str, *, eps: float = 1e-6
) -> torch.Tensor:
    """AdaLNBeforeHead `{head}_nm` then the linear `head` (e.g. "head", "ns_head", "mask_head"): (B, L, C) -> V."""
    import torch.nn.functional as F

    C = x.shape[-1]
    ada = F.linear(F.silu(cond), sd[f"{head}_nm.ada_lin.1.weight"], sd[f"{head}_nm.ada_lin.1.bias"])
    scale, shift = ada.view(-1, 1, 2, C).unbind(2)
    h = F.layer_norm(x, (C,), eps=eps).mul(scale + 1).add(shift)
    return F.linear(h, sd[f"{head}.weight"], sd[f"{head}.bias"])
