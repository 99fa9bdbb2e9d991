"""The official FlowAR math (wangqiang9/FlowAR: models/flowar.py, flowmodel.py, rope.py, sampler.py) written again
with plain ops on a state dict, independently of genmotion's modules: the teacher-forced encoder/decoder pass,
the flow head, the Euler sampler with guidance, and tiny official-layout state dicts to run them on."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from flowar_official_layout import flowar_inventory, kl16_inventory

TINY_FLOWAR = dict(width=32, depth=2, heads=2, head_depth=2, head_width=64, patch_nums=(1, 2, 4), latent=4)
TINY_KL = dict(ch=8, ch_mult=(1, 2), z=4)


def tiny_flowar_state_dict(seed: int, cross: bool) -> dict[str, torch.Tensor]:
    """Random weights in the official layout (scaled small), the buffers as the official code builds them."""
    inventory = flowar_inventory(**TINY_FLOWAR, cross=cross)
    g = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(shape, generator=g) * 0.2 for k, shape in inventory.items()}
    freqs = {}  # one tensor per size, stored under every key that holds it (a file may share storage so)
    for k, shape in inventory.items():
        if k.endswith("rope.freqs"):
            dim = 2 * shape[0]  # the rope's dim (half the head dim); the buffer holds dim / 2 frequencies
            sd[k] = freqs.setdefault(dim, 1.0 / (10000 ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim)))
    L, rows, start = sum(p * p for p in TINY_FLOWAR["patch_nums"]), [], 0
    for pz in TINY_FLOWAR["patch_nums"]:
        start += pz * pz
        rows.append(torch.cat([torch.ones(pz * pz, start), torch.zeros(pz * pz, L - start)], dim=-1))
    mask = torch.cat(rows, dim=0)
    sd["mask"] = torch.where(mask == 0, -torch.inf, torch.where(mask == 1, 0.0, mask))[None, None]
    return sd


def tiny_kl_state_dict(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) * 0.2 for k, s in kl16_inventory(**TINY_KL).items()}


def _rms(x: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
    out = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    return out if w is None else out * w


def _rope(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """VisionRotaryEmbeddingFast.forward (pt_seq_len 16) on x (B, H, n, d)."""
    ft = int(math.sqrt(x.shape[2]))
    t = torch.arange(ft) / ft * 16
    f = torch.einsum("i,f->if", t, freqs)
    f = torch.stack((f, f), dim=-1).flatten(-2)  # '... n -> ... (n r)', r = 2
    f = torch.cat((f[:, None, :].expand(ft, ft, -1), f[None, :, :].expand(ft, ft, -1)), dim=-1).view(ft * ft, -1)
    x2 = x.reshape(*x.shape[:-1], -1, 2)
    rotated = torch.stack((-x2[..., 1], x2[..., 0]), dim=-1).flatten(-2)
    return x * f.cos() + rotated * f.sin()


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    a = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return (a if mask is None else a + mask).softmax(-1) @ v


def _geglu(sd: dict, p: str, x: torch.Tensor) -> torch.Tensor:
    h = F.gelu(F.linear(x, sd[p + "fc1_g.weight"], sd[p + "fc1_g.bias"])) * F.linear(
        x, sd[p + "fc1_x.weight"], sd[p + "fc1_x.bias"]
    )
    return F.linear(h, sd[p + "fc2.weight"], sd[p + "fc2.bias"])


def _self_attention(sd: dict, p: str, x: torch.Tensor, heads: int, sizes: list[int], mask=None) -> torch.Tensor:
    B, N, C = x.shape
    qkv = F.linear(x, sd[p + "qkv.weight"], sd.get(p + "qkv.bias")).reshape(B, N, 3, heads, C // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    bounds = [0, *torch.tensor(sizes).cumsum(0).tolist()]
    q = torch.cat(
        [_rope(q[:, :, a:b], sd[p + "rope.freqs"]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)], dim=2
    )
    k = torch.cat(
        [_rope(k[:, :, a:b], sd[p + "rope.freqs"]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)], dim=2
    )
    out = _sdpa(q, k, v, mask).transpose(1, 2).reshape(B, N, C)
    return F.linear(out, sd[p + "proj.weight"], sd[p + "proj.bias"])


def official_z(sd: dict, label_B: torch.Tensor, inputs: torch.Tensor, *, depth: int, heads: int) -> torch.Tensor:
    """FlowAR.forward up to z (forward_mae_encoder + forward_mae_decoder, buffer_size 0, no label drop), on the
    first scales: inputs (B, L' - 1, Cz) -> z (B, L', C) (the mask and positions cut to L')."""
    C = sd["class_emb.weight"].shape[1]
    cond = F.embedding(label_B, sd["class_emb.weight"])
    x = torch.cat((cond.unsqueeze(1), F.linear(inputs, sd["z_proj.weight"], sd["z_proj.bias"])), dim=1)
    L = x.shape[1]
    sizes, side = [], 1
    while sum(sizes) < L:
        sizes.append(side * side)
        side *= 2
    mask = sd["mask"][:, :, :L, :L]
    x = _rms(x + sd["encoder_pos_embed_learned"][:, :L], sd["z_proj_ln.weight"])
    for stack in ("encoder_blocks", "decoder_blocks"):
        if stack == "decoder_blocks":
            x = F.linear(_rms(x, sd["encoder_norm.weight"]), sd["decoder_embed.weight"], sd["decoder_embed.bias"])
            x = x + sd["decoder_pos_embed_learned"][:, :L]
        for i in range(depth):
            p = f"{stack}.{i}."
            ada = F.linear(F.silu(cond), sd[p + "ada_lin.1.weight"], sd[p + "ada_lin.1.bias"])
            g1, g2, s1, s2, b1, b2 = ada.view(-1, 1, 6, C).unbind(2)
            x = x + _self_attention(sd, p + "attn.", _rms(x) * (1 + s1) + b1, heads, sizes, mask) * g1
            x = x + _geglu(sd, p + "mlp.", _rms(x) * (1 + s2) + b2) * g2
    return _rms(x, sd["decoder_norm.weight"]) + sd["diffusion_pos_embed_learned"][:, :L]


def official_velocity(sd: dict, x: torch.Tensor, t_B: torch.Tensor, cond: torch.Tensor, *, depth: int) -> torch.Tensor:
    """SimpleTransformerAdaLN.forward (flownet) on x (B, N, Cz), t (B,), the condition z (B, N, C)."""
    f, W = "flownet.", sd["flownet.input_proj.weight"].shape[0]
    heads, (B, N, _) = W // 64, x.shape
    half = 128
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = (t_B * 1000).long()[:, None].float() * freqs[None]
    temb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    temb = F.linear(F.silu(F.linear(temb, sd[f + "time_embed.mlp.0.weight"], sd[f + "time_embed.mlp.0.bias"])),
                    sd[f + "time_embed.mlp.2.weight"], sd[f + "time_embed.mlp.2.bias"]).unsqueeze(1)  # fmt: skip
    h = F.linear(x, sd[f + "input_proj.weight"], sd[f + "input_proj.bias"])
    c = F.linear(cond, sd[f + "cond_embed.weight"], sd[f + "cond_embed.bias"])
    for i in range(depth):
        p = f"{f}res_blocks.{i}."
        if p + "ada_lin.weight" in sd:  # Block_v1
            g1, g2, s1, s2, b1, b2 = (
                F.linear(F.silu(temb + c), sd[p + "ada_lin.weight"], sd[p + "ada_lin.bias"]).view(B, N, 6, W).unbind(2)
            )
            h = h + _self_attention(sd, p + "attn.", _rms(h) * (1 + s1) + b1, heads, [N]) * g1
            h = h + _geglu(sd, p + "mlp.", _rms(h) * (1 + s2) + b2) * g2
            continue
        g1, s1, b1 = (
            F.linear(F.silu(temb), sd[p + "ada_lin_attn.weight"], sd[p + "ada_lin_attn.bias"])
            .view(B, 1, 3, W)
            .unbind(2)
        )
        g2, s2, b2 = (
            F.linear(F.silu(c + temb), sd[p + "ada_lin_mlp.weight"], sd[p + "ada_lin_mlp.bias"])
            .view(B, N, 3, W)
            .unbind(2)
        )
        h = h + _self_attention(sd, p + "attn.", _rms(h) * (1 + s1) + b1, heads, [N]) * g1
        q = F.linear(_rms(h, sd[p + "norm2_1.weight"]), sd[p + "crossattn.q.weight"]).reshape(B, N, heads, -1)
        kv = F.linear(_rms(cond, sd[p + "norm2_2.weight"]), sd[p + "crossattn.kv.weight"])
        k, v = kv.reshape(B, N, 2, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        q = _rope(q.permute(0, 2, 1, 3), sd[p + "crossattn.rope.freqs"])
        k = _rope(k, sd[p + "crossattn.rope.freqs"])
        out = _sdpa(q, k, v).permute(0, 2, 1, 3).reshape(B, N, W)
        h = h + F.linear(out, sd[p + "crossattn.proj.weight"], sd[p + "crossattn.proj.bias"])
        h = h + _geglu(sd, p + "mlp.", _rms(h) * (1 + s2) + b2) * g2
    m = F.linear(F.silu(c + temb), sd[f + "final_layer.adaLN_modulation.1.weight"],
                 sd[f + "final_layer.adaLN_modulation.1.bias"])  # fmt: skip
    shift, scale = m.chunk(2, dim=-1)
    return F.linear(
        _rms(h) * (1 + scale) + shift, sd[f + "final_layer.linear.weight"], sd[f + "final_layer.linear.bias"]
    )


def official_sample(
    sd: dict, labels_B: torch.Tensor, noises: list[torch.Tensor], *, cfg: float, guidance: float, num_steps: int,
    depth: int, heads: int, head_depth: int,
) -> torch.Tensor:  # fmt: skip
    """FlowAR.sample_tokens with sampler.euler_sampler: the last scale's latent (B, n, Cz) from the conditional
    noise of each scale (the unconditional rows start from other noise: it does not reach the result)."""
    B, pns, null = labels_B.shape[0], TINY_FLOWAR["patch_nums"], sd["class_emb.weight"].shape[0] - 1
    labels = torch.cat((labels_B, torch.full_like(labels_B, null))) if cfg != 1.0 else labels_B
    R, inputs = labels.shape[0], []
    t_steps = torch.cat([torch.linspace(1, 0.3, num_steps // 2, dtype=torch.float64),
                         torch.linspace(0.25, 0, num_steps // 2 + 1, dtype=torch.float64)])  # fmt: skip
    if num_steps == 50:
        t_steps = torch.linspace(1, 0, num_steps + 1, dtype=torch.float64)
    start = 0
    for step, pn in enumerate(pns):
        z_all = official_z(
            sd,
            labels,
            torch.cat(inputs, 1) if inputs else torch.zeros(R, 0, noises[0].shape[-1]),
            depth=depth,
            heads=heads,
        )
        z = z_all[:, start : start + pn * pn]
        start += pn * pn
        scaled_cfg = (cfg - 1) * step / (len(pns) - 1) + 1
        x = torch.cat((noises[step], -noises[step]))[:R].double() if R > B else noises[step].double()
        for t_cur, t_next in zip(t_steps[:-1], t_steps[1:], strict=True):
            use = scaled_cfg > 1.0 and t_cur <= guidance
            model_input = torch.cat([x[: x.shape[0] // 2]] * 2) if use else x
            time = torch.ones(model_input.shape[0], dtype=torch.float64) * t_cur
            d = official_velocity(sd, model_input.float(), time.float(), z, depth=head_depth).double()
            if use:
                d_c, d_u = d.chunk(2)
                d = torch.cat([d_u + scaled_cfg * (d_c - d_u)] * 2)
            x = x + (t_next - t_cur) * d
        sample = x[:B].float()
        if step + 1 < len(pns):
            m = sample.permute(0, 2, 1).reshape(B, -1, pn, pn)
            side = pns[-1]
            m = F.interpolate(F.interpolate(m, (side, side), mode="bicubic"), (pns[step + 1],) * 2, mode="area")
            m = m.reshape(B, m.shape[1], -1).permute(0, 2, 1)
            inputs.append(m.repeat(2, 1, 1) if R > B else m)
    return sample


def official_kl_decode(
    sd: dict, z: torch.Tensor, *, groups: int, num_levels: int, num_res_blocks: int = 2
) -> torch.Tensor:
    """AutoencoderKL.decode of MAR's vae.py (LDM's decoder: separate q/k/v attention at the lowest resolution)."""

    def norm(p: str, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, groups, sd[p + ".weight"], sd[p + ".bias"], eps=1e-6)

    def conv(p: str, x: torch.Tensor) -> torch.Tensor:
        w = sd[p + ".weight"]
        return F.conv2d(x, w, sd[p + ".bias"], padding=w.shape[-1] // 2)

    def resnet(p: str, x: torch.Tensor) -> torch.Tensor:
        h = conv(p + "conv1", F.silu(norm(p + "norm1", x)))
        h = conv(p + "conv2", F.silu(norm(p + "norm2", h)))
        return (conv(p + "nin_shortcut", x) if p + "nin_shortcut.weight" in sd else x) + h

    def attn(p: str, x: torch.Tensor) -> torch.Tensor:
        h = norm(p + "norm", x)
        b, c, hh, ww = h.shape
        q = conv(p + "q", h).reshape(b, c, -1).permute(0, 2, 1)
        k, v = conv(p + "k", h).reshape(b, c, -1), conv(p + "v", h).reshape(b, c, -1)
        w_ = torch.softmax(torch.bmm(q, k) * c**-0.5, dim=2)
        return x + conv(p + "proj_out", torch.bmm(v, w_.permute(0, 2, 1)).reshape(b, c, hh, ww))

    h = conv("decoder.conv_in", conv("post_quant_conv", z))
    h = resnet("decoder.mid.block_2.", attn("decoder.mid.attn_1.", resnet("decoder.mid.block_1.", h)))
    for lvl in reversed(range(num_levels)):
        for i in range(num_res_blocks + 1):
            h = resnet(f"decoder.up.{lvl}.block.{i}.", h)
            if f"decoder.up.{lvl}.attn.{i}.q.weight" in sd:
                h = attn(f"decoder.up.{lvl}.attn.{i}.", h)
        if lvl != 0:
            h = conv(f"decoder.up.{lvl}.upsample.conv", F.interpolate(h, scale_factor=2.0, mode="nearest"))
    return conv("decoder.conv_out", F.silu(norm("decoder.norm_out", h)))
