"""The official FlowAR key/shape inventory (wangqiang9/FlowAR, a copy of the official code: models/flowar.py,
flowmodel.py, rope.py, vae.py, with timm's SwiGLU), written down from that code: the model file of FlowAR-S/L/H
and MAR's KL-16 autoencoder it decodes with (`official_flowar_model` and `KLAutoencoder` load them)."""

from __future__ import annotations

Shape = tuple[int, ...]
FLOWAR_SIZES = {  # flowar_small / large / huge, with the README's diffloss_d and diffloss_w
    "S": dict(width=768, depth=6, heads=12, head_depth=2, head_width=1024, cross=False),
    "L": dict(width=1024, depth=8, heads=16, head_depth=12, head_width=1024, cross=True),
    "H": dict(width=1536, depth=15, heads=16, head_depth=12, head_width=1536, cross=True),
}


def _linear(inv: dict[str, Shape], name: str, out: int, cin: int, bias: bool = True) -> None:
    inv[name + ".weight"] = (out, cin)
    if bias:
        inv[name + ".bias"] = (out,)


def _geglu(inv: dict[str, Shape], prefix: str, width: int) -> None:
    """timm SwiGLU (FlowAR passes act_layer=nn.GELU): fc1_g, fc1_x, fc2; hidden int(width * 4 * 2 / 3)."""
    hidden = int(width * 4 * 2 / 3.0)
    _linear(inv, prefix + "fc1_g", hidden, width)
    _linear(inv, prefix + "fc1_x", hidden, width)
    _linear(inv, prefix + "fc2", width, hidden)


def flowar_inventory(
    *, width: int, depth: int, heads: int, head_depth: int, head_width: int, cross: bool,
    patch_nums: tuple[int, ...] = (1, 2, 4, 8, 16), latent: int = 16,
) -> dict[str, Shape]:  # fmt: skip
    """`FlowAR(...).state_dict()` keys and shapes (buffer_size 0): encoder and decoder stacks of RMSNorm/AdaLN
    blocks with 2-D RoPE (a `rope.freqs` buffer per attention), and the flow head `flownet`."""
    L, C = sum(p * p for p in patch_nums), width
    inv: dict[str, Shape] = {"class_emb.weight": (1001, C), "z_proj_ln.weight": (C,), "mask": (1, 1, L, L)}
    _linear(inv, "z_proj", C, latent)
    for name in ("encoder_pos_embed_learned", "decoder_pos_embed_learned", "diffusion_pos_embed_learned"):
        inv[name] = (1, L, C)
    for stack in ("encoder_blocks", "decoder_blocks"):
        for i in range(depth):
            b = f"{stack}.{i}."
            _linear(inv, b + "attn.qkv", 3 * C, C)
            _linear(inv, b + "attn.proj", C, C)
            inv[b + "attn.rope.freqs"] = (C // heads // 4,)
            _geglu(inv, b + "mlp.", C)
            _linear(inv, b + "ada_lin.1", 6 * C, C)
    inv["encoder_norm.weight"] = inv["decoder_norm.weight"] = (C,)
    _linear(inv, "decoder_embed", C, C)
    W, f = head_width, "flownet."
    _linear(inv, f + "time_embed.mlp.0", W, 256)
    _linear(inv, f + "time_embed.mlp.2", W, W)
    _linear(inv, f + "cond_embed", W, C)
    _linear(inv, f + "input_proj", W, latent)
    for i in range(head_depth):
        b = f"{f}res_blocks.{i}."
        _linear(inv, b + "attn.qkv", 3 * W, W, bias=False)
        _linear(inv, b + "attn.proj", W, W)
        inv[b + "attn.rope.freqs"] = (16,)  # head dim 64 in the flow head: 64 // 4
        _geglu(inv, b + "mlp.", W)
        if cross:  # Block_v2: cross-attention to z, two AdaLN projections
            _linear(inv, b + "crossattn.q", W, W, bias=False)
            _linear(inv, b + "crossattn.kv", 2 * W, C, bias=False)
            _linear(inv, b + "crossattn.proj", W, W)
            inv[b + "crossattn.rope.freqs"] = (16,)
            inv[b + "norm2_1.weight"], inv[b + "norm2_2.weight"] = (W,), (C,)
            _linear(inv, b + "ada_lin_attn", 3 * W, W)
            _linear(inv, b + "ada_lin_mlp", 3 * W, W)
        else:  # Block_v1
            _linear(inv, b + "ada_lin", 6 * W, W)
    _linear(inv, f + "final_layer.linear", latent, W)
    _linear(inv, f + "final_layer.adaLN_modulation.1", 2 * W, W)
    return inv


def kl16_inventory(*, ch: int = 128, ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4), z: int = 16) -> dict[str, Shape]:
    """MAR's `AutoencoderKL(embed_dim=16, ch_mult=(1, 1, 2, 2, 4))` (LDM's KL-VAE: separate q/k/v convs in its
    attention, attention at the 16x16 level, double_z)."""
    inv: dict[str, Shape] = {}

    def conv(name: str, out: int, cin: int, k: int) -> None:
        inv[name + ".weight"], inv[name + ".bias"] = (out, cin, k, k), (out,)

    def norm(name: str, c: int) -> None:
        inv[name + ".weight"] = inv[name + ".bias"] = (c,)

    def resnet(p: str, cin: int, cout: int) -> None:
        (
            norm(p + "norm1", cin),
            conv(p + "conv1", cout, cin, 3),
            norm(p + "norm2", cout),
            conv(p + "conv2", cout, cout, 3),
        )
        if cin != cout:
            conv(p + "nin_shortcut", cout, cin, 1)

    def attn(p: str, c: int) -> None:
        norm(p + "norm", c)
        for name in ("q", "k", "v", "proj_out"):
            conv(p + name, c, c, 1)

    last, top = len(ch_mult) - 1, ch * ch_mult[-1]
    conv("encoder.conv_in", ch, 3, 3)
    block_in = ch
    for lvl, m in enumerate(ch_mult):
        for i in range(2):
            resnet(f"encoder.down.{lvl}.block.{i}.", block_in, ch * m)
            block_in = ch * m
            if lvl == last:
                attn(f"encoder.down.{lvl}.attn.{i}.", block_in)
        if lvl != last:
            conv(f"encoder.down.{lvl}.downsample.conv", block_in, block_in, 3)
    for side in ("encoder", "decoder"):
        (
            resnet(f"{side}.mid.block_1.", top, top),
            attn(f"{side}.mid.attn_1.", top),
            resnet(f"{side}.mid.block_2.", top, top),
        )
    norm("encoder.norm_out", top)
    conv("encoder.conv_out", 2 * z, top, 3)
    conv("decoder.conv_in", top, z, 3)
    block_in = top
    for lvl in reversed(range(len(ch_mult))):
        for i in range(3):
            resnet(f"decoder.up.{lvl}.block.{i}.", block_in, ch * ch_mult[lvl])
            block_in = ch * ch_mult[lvl]
            if lvl == last:
                attn(f"decoder.up.{lvl}.attn.{i}.", block_in)
        if lvl != 0:
            conv(f"decoder.up.{lvl}.upsample.conv", block_in, block_in, 3)
    norm("decoder.norm_out", block_in)
    conv("decoder.conv_out", 3, block_in, 3)
    conv("quant_conv", 2 * z, 2 * z, 1)
    conv("post_quant_conv", z, z, 1)
    return inv
