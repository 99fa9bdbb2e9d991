"""The official FlexVAR (jiaosiyu1999/FlexVAR: models/flexvar.py, basic_var.py, vq_llama.py) and HMAR (NVlabs/HMAR:
models/hmar.py, transformer_blocks.py, quant.py) key/shape inventories and reference forwards, written from the
official code's module trees and math with plain ops, independently of genmotion's modules."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from image_core_official_layout import ldm_inventory, official_blocks, official_buffers, official_head, var_inventory

Shape = tuple[int, ...]


# ---- FlexVAR transformer ---------------------------------------------------------------------------------------
def flexvar_inventory(
    *, depth: int, width: int | None = None, num_classes: int = 1000, vocab: int = 8912, cvae: int = 32,
    pos_side: int = 32, mask_tokens: int = 680, attn_l2_norm: bool = True,
) -> dict[str, Shape]:  # fmt: skip
    """`FlexVAR(...).state_dict()`: VAR's blocks and head, no level embedding / level map, pos_start (1, 1, C),
    pos_1LC the 2-D map (1, C, 32, 32), attn_bias_for_masking of the last schedule run (680 tokens at build)."""
    C = width or 64 * depth
    inv = var_inventory(depth=depth, patch_nums=(1,), width=C, num_classes=num_classes, vocab=vocab, cvae=cvae,
                        attn_l2_norm=attn_l2_norm)  # fmt: skip
    for key in ("lvl_1L", "lvl_embed.weight"):
        del inv[key]
    inv["pos_1LC"] = (1, C, pos_side, pos_side)
    inv["attn_bias_for_masking"] = (1, 1, mask_tokens, mask_tokens)
    return inv


def official_flexvar_logits(
    sd: dict[str, torch.Tensor], label_B: torch.Tensor, inputs: list[torch.Tensor], *, depth: int
) -> torch.Tensor:
    """FlexVAR.forward (teacher forcing) for the schedule (1, sides of `inputs`); inputs (B, Cv, h, h) each."""
    B, C = label_B.shape[0], sd["word_embed.weight"].shape[0]
    sides = [1] + [int(x.shape[-1]) for x in inputs]
    sos = cond = F.embedding(label_B, sd["class_emb.weight"])
    sos = sos.unsqueeze(1).expand(B, 1, -1) + sd["pos_start"].expand(B, 1, -1)
    x_BLCv = torch.cat([x.flatten(2).transpose(1, 2) for x in inputs], dim=1)
    x = torch.cat((sos, F.linear(x_BLCv, sd["word_embed.weight"], sd["word_embed.bias"])), dim=1)
    pos = [F.interpolate(sd["pos_1LC"], size=(s, s), mode="area").reshape(1, C, -1).permute(0, 2, 1) for s in sides]
    x = x + torch.cat(pos, dim=1)
    mask = official_buffers(tuple(sides))["attn_bias_for_masking"]
    x = official_blocks(sd, x, cond, mask, [f"blocks.{i}." for i in range(depth)], heads=depth)
    return official_head(sd, x, cond, "head")


# ---- FlexVAE (LlamaGen VQ) --------------------------------------------------------------------------------------
def _llama_attn(inv: dict[str, Shape], prefix: str, c: int) -> None:
    inv[prefix + "norm.weight"] = inv[prefix + "norm.bias"] = (c,)
    for conv in ("q", "k", "v", "proj_out"):
        inv[f"{prefix}{conv}.weight"], inv[f"{prefix}{conv}.bias"] = (c, c, 1, 1), (c,)


def flexvae_inventory(
    *, vocab: int = 8912, cvae: int = 32, ch: int = 128, ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4),
    num_res_blocks: int = 2, z_channels: int = 256,
) -> dict[str, Shape]:  # fmt: skip
    """`VQ_models['VQ-16'](codebook_size=V, codebook_embed_dim=32).state_dict()` (LlamaGen's VQModel): levels in
    `conv_blocks` (the decoder's listed coarse to fine), res blocks `res`, `mid.0/1/2`, separate q/k/v convs."""
    inv = ldm_inventory(ch=ch, ch_mult=ch_mult, num_res_blocks=num_res_blocks, z=z_channels,
                        down="conv_blocks.{index}.", up="conv_blocks.{index}.", res="res", mid=("0", "1", "2"),
                        attn=_llama_attn)  # fmt: skip
    inv["quantize.embedding.weight"] = (vocab, cvae)
    inv["quantize.codebook_used"] = (65536,)
    inv["quant_conv.weight"], inv["quant_conv.bias"] = (cvae, z_channels, 1, 1), (cvae,)
    inv["post_quant_conv.weight"], inv["post_quant_conv.bias"] = (z_channels, cvae, 1, 1), (z_channels,)
    return inv


def _gn(sd: dict, p: str, x: torch.Tensor, groups: int) -> torch.Tensor:
    return F.group_norm(x, groups, sd[p + "weight"], sd[p + "bias"], eps=1e-6)


def _conv(sd: dict, p: str, x: torch.Tensor, padding: int = 0, stride: int = 1) -> torch.Tensor:
    return F.conv2d(x, sd[p + "weight"], sd[p + "bias"], stride=stride, padding=padding)


def _res(sd: dict, p: str, x: torch.Tensor, groups: int) -> torch.Tensor:
    h = _conv(sd, p + "conv1.", F.silu(_gn(sd, p + "norm1.", x, groups)), 1)
    h = _conv(sd, p + "conv2.", F.silu(_gn(sd, p + "norm2.", h, groups)), 1)
    return (_conv(sd, p + "nin_shortcut.", x) if p + "nin_shortcut.weight" in sd else x) + h


def _attn(sd: dict, p: str, x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    n = _gn(sd, p + "norm.", x, groups)
    q, k, v = (_conv(sd, f"{p}{t}.", n).reshape(b, c, h * w) for t in "qkv")
    w_ = torch.bmm(q.permute(0, 2, 1), k).mul(c**-0.5).softmax(dim=2)  # b, hw(q), hw(k)
    return x + _conv(sd, p + "proj_out.", torch.bmm(v, w_.permute(0, 2, 1)).reshape(b, c, h, w))


def _levels(sd: dict, side: str) -> int:
    return len({k.split(".")[2] for k in sd if k.startswith(f"{side}.conv_blocks.")})


def _level(sd: dict, p: str, h: torch.Tensor, groups: int) -> torch.Tensor:
    """One `conv_blocks` entry's res blocks, each followed by its attention where the level has one."""
    for i in range(len({k.split(".")[4] for k in sd if k.startswith(p + "res.")})):
        h = _res(sd, f"{p}res.{i}.", h, groups)
        if f"{p}attn.{i}.q.weight" in sd:
            h = _attn(sd, f"{p}attn.{i}.", h, groups)
    return h


def official_flexvae_decode(sd: dict, idx_Bl: torch.Tensor, side: int, *, groups: int = 32) -> torch.Tensor:
    """VQModel.decode_code: L2-normalised codes -> post_quant_conv -> Decoder, (B, side*side) -> (B, 3, H, W)."""
    codes = F.normalize(sd["quantize.embedding.weight"], p=2, dim=-1)[idx_Bl]  # B, l, C
    z = codes.reshape(idx_Bl.shape[0], side, side, -1).permute(0, 3, 1, 2)
    h = _conv(sd, "decoder.conv_in.", _conv(sd, "post_quant_conv.", z), 1)
    for mid in ("decoder.mid.0.", "decoder.mid.1.", "decoder.mid.2."):
        h = (_attn if mid.endswith("1.") else _res)(sd, mid, h, groups)
    n = _levels(sd, "decoder")
    for j in range(n):
        p = f"decoder.conv_blocks.{j}."
        h = _level(sd, p, h, groups)
        if j != n - 1:
            h = _conv(sd, p + "upsample.conv.", F.interpolate(h, scale_factor=2.0, mode="nearest"), 1)
    return _conv(sd, "decoder.conv_out.", F.silu(_gn(sd, "decoder.norm_out.", h, groups)), 1)


def official_flexvae_indices(sd: dict, image: torch.Tensor, sides: list[int], *, groups: int = 32) -> list:
    """multi_scale_encode's ids: Encoder, area-downsample to each side, quant_conv, nearest L2-normalised code."""
    h = _conv(sd, "encoder.conv_in.", image, 1)
    n = _levels(sd, "encoder")
    for lvl in range(n):
        p = f"encoder.conv_blocks.{lvl}."
        h = _level(sd, p, h, groups)
        if lvl != n - 1:
            h = _conv(sd, p + "downsample.conv.", F.pad(h, (0, 1, 0, 1)), stride=2)
    for mid in ("encoder.mid.0.", "encoder.mid.1.", "encoder.mid.2."):
        h = (_attn if mid.endswith("1.") else _res)(sd, mid, h, groups)
    h = _conv(sd, "encoder.conv_out.", F.silu(_gn(sd, "encoder.norm_out.", h, groups)), 1)
    emb = F.normalize(sd["quantize.embedding.weight"], p=2, dim=-1)
    out = []
    for s in sides:
        z = _conv(sd, "quant_conv.", F.interpolate(h, size=(s, s), mode="area"))
        z = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]), p=2, dim=-1)
        d = z.square().sum(1, keepdim=True) + emb.square().sum(1) - 2 * z @ emb.T
        out.append(d.argmin(1).view(image.shape[0], s * s))
    return out


# ---- HMAR ---------------------------------------------------------------------------------------------------------
def hmar_inventory(
    *, depth: int, patch_nums: tuple[int, ...], n_layers_train: int = 8, width: int | None = None,
    num_classes: int = 1000, vocab: int = 4096, cvae: int = 32, shared_aln: bool = False,
) -> dict[str, Shape]:  # fmt: skip
    """`HMAR(...).state_dict()` (build_vae_hmar): base_blocks (depth - n) + ns_blocks (n) + mask_blocks (n), the
    ns_/mask_ heads, word_embed without bias + word_embed_bias, mask_embed (1, C), VAR's embeddings and buffers."""
    C = width or 64 * depth
    var = var_inventory(depth=depth, patch_nums=patch_nums, width=C, num_classes=num_classes, vocab=vocab, cvae=cvae,
                        shared_aln=shared_aln)  # fmt: skip
    block = {k[len("blocks.0.") :]: s for k, s in var.items() if k.startswith("blocks.0.")}
    inv = {k: s for k, s in var.items() if not k.startswith(("blocks.", "head", "word_embed.bias"))}
    trunk = depth - n_layers_train
    for name, count in (("base_blocks", trunk), ("ns_blocks", n_layers_train), ("mask_blocks", n_layers_train)):
        inv.update({f"{name}.{i}.{k}": s for i in range(count) for k, s in block.items()})
    for head in ("ns_head", "mask_head"):
        inv[f"{head}_nm.ada_lin.1.weight"], inv[f"{head}_nm.ada_lin.1.bias"] = (2 * C, C), (2 * C,)
        inv[f"{head}.weight"], inv[f"{head}.bias"] = (vocab, C), (vocab,)
    inv["word_embed_bias"] = (C,)
    inv["mask_embed.weight"] = (1, C)
    return inv


def hmar_mask(patch_nums: tuple[int, ...]) -> torch.Tensor:
    """HMAR's attn_bias_for_masking: torch.where(d == dT, 0, -inf), block-diagonal by scale."""
    L = sum(p * p for p in patch_nums)
    d = torch.cat([torch.full((p * p,), i) for i, p in enumerate(patch_nums)]).view(1, L, 1)
    return torch.where(d == d.transpose(1, 2), 0.0, -torch.inf).reshape(1, 1, L, L)


def official_hmar_logits(
    sd: dict[str, torch.Tensor], label_B: torch.Tensor, x_BLCv: torch.Tensor, *, depth: int, n_layers_train: int,
    own_BLCv: torch.Tensor | None = None, idx_to_mask: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """HMAR's next-scale logits (base + ns blocks, ns head) over all scales; with `own_BLCv` and `idx_to_mask`
    (token positions hidden in every row), get_word_embed's masked input through base + mask blocks, mask head."""
    B, first_l = label_B.shape[0], sd["pos_start"].shape[1]
    sos = cond = F.embedding(label_B, sd["class_emb.weight"])
    sos = sos.unsqueeze(1).expand(B, first_l, -1) + sd["pos_start"].expand(B, first_l, -1)
    we = F.linear(x_BLCv, sd["word_embed.weight"])
    if own_BLCv is not None:
        own = F.linear(own_BLCv, sd["word_embed.weight"])
        own[:, idx_to_mask, :] = sd["mask_embed.weight"][0]
        we = we + own
    x = torch.cat((sos, we + sd["word_embed_bias"]), dim=1)
    x = x + F.embedding(sd["lvl_1L"].expand(B, -1), sd["lvl_embed.weight"]) + sd["pos_1LC"]
    branch = "mask" if own_BLCv is not None else "ns"
    trunk = depth - n_layers_train
    names = [f"base_blocks.{i}." for i in range(trunk)] + [f"{branch}_blocks.{i}." for i in range(n_layers_train)]
    x = official_blocks(sd, x, cond, sd["attn_bias_for_masking"], names, heads=depth)
    return official_head(sd, x, cond, f"{branch}_head")
