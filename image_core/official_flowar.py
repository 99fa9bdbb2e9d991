"""Official FlowAR checkpoints (FlowAR-S/L/H `.pth` of OliverRen/FlowAR, with MAR's `kl16.ckpt`) -> checkpoint
directories of kind `flowar-official`, and their sampler.

The transformer file loads key for key onto `official_flowar_model.OfficialFlowAR` (sizes read from the shapes;
the stored mask and RoPE frequencies rebuilt and compared). MAR's KL-16 autoencoder is `KLAutoencoder` once its
separate q/k/v convolutions are concatenated into `qkv`; its latent scale 0.2325 becomes `latent_std` =
1 / 0.2325 (mean 0). Sampling follows the official code: the transformer runs one scale at a time against its
KV cache; the flow head integrates each scale with the official Euler times (t from 1 to 0.3 in num_steps / 2
steps, then 0.25 to 0; uniform for 50 steps), guidance ramped over the scales and applied only at t <= the
guidance interval. Files load with weights_only only.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from torch import nn

from genmotion.checkpoint import load_weights, save_pretrained
from genmotion.errors import InputError, UsageError
from genmotion.image_core.convert import class_checkpoint_config, read_class_checkpoint
from genmotion.image_core.flowar_config import FlowARSamplingConfig, KLAutoencoderConfig
from genmotion.image_core.flowar_model import next_scale_input
from genmotion.image_core.flowar_sampler import FlowARScale, guidance_ramp, sample_head
from genmotion.image_core.kl_autoencoder import KLAutoencoder
from genmotion.image_core.labels import check_labels
from genmotion.image_core.official_flowar_model import (
    OfficialFlowAR,
    OfficialFlowARConfig,
    RopeFrequencies,
    scale_causal_mask,
)
from genmotion.image_core.official_layouts import distinct_storage, read_state_dict, require_layout

__all__ = [
    "OFFICIAL_FLOWAR_KIND",
    "OfficialFlowARImageConfig",
    "OfficialFlowARImageModel",
    "convert_official_flowar",
    "detect_official_flowar_config",
    "load_official_flowar_checkpoint",
    "load_official_flowar_model",
    "official_flowar_buffers",
    "save_official_flowar",
    "official_times",
    "stream_official_scales",
]

OFFICIAL_FLOWAR_KIND = "flowar-official"
MAR_LATENT_SCALE = 0.2325  # MAR / FlowAR multiply KL-16 latents by this before modelling them
Source = str | Path | Mapping[str, torch.Tensor]
_BLOCK = re.compile(r"^(encoder_blocks|decoder_blocks|flownet\.res_blocks)\.(\d+)\.")
_QKV = re.compile(r"^(.*\.(?:attn_1|attn\.\d+)\.)([qkv])\.(weight|bias)$")
_OFFICIAL_SAMPLING = {  # width -> the README's evaluation settings of FlowAR-S, -L, -H
    768: FlowARSamplingConfig(guidance_scale=4.3, guidance_interval=0.9, num_steps=25),
    1024: FlowARSamplingConfig(guidance_scale=2.4, guidance_interval=0.9, num_steps=25),
    1536: FlowARSamplingConfig(guidance_scale=2.4, guidance_interval=0.7, num_steps=50),
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class OfficialFlowARImageConfig:
    """MAR's KL autoencoder and the official FlowAR network: what a `flowar-official` directory holds."""

    vae: KLAutoencoderConfig = dataclasses.field(default_factory=KLAutoencoderConfig)
    flowar: OfficialFlowARConfig = dataclasses.field(default_factory=OfficialFlowARConfig)

    def __post_init__(self) -> None:
        latent = (self.flowar.latent_channels, self.flowar.patch_nums[-1])
        if (self.vae.latent_channels, self.vae.latent_size) != latent:
            raise ValueError("the autoencoder's latent channels and size must be the network's")

    @property
    def var(self) -> OfficialFlowARConfig:
        """What tools of the VAR family read (patch_nums, num_classes)."""
        return self.flowar


class OfficialFlowARImageModel(nn.Module):
    """`vae` (KLAutoencoder), `net` (OfficialFlowAR, flow head `net.flownet`) and the latent scaling
    (`latent_mean`, `latent_std`, each (Cz,)), as `FlowARPipeline` reads them."""

    latent_mean: torch.Tensor
    latent_std: torch.Tensor

    def __init__(self, config: OfficialFlowARImageConfig) -> None:
        super().__init__()
        self.config = config
        self.vae, self.net = KLAutoencoder(config.vae), OfficialFlowAR(config.flowar)
        C = config.flowar.latent_channels
        self.register_buffer("latent_mean", torch.zeros(C))
        self.register_buffer("latent_std", torch.full((C,), 1.0 / MAR_LATENT_SCALE))

    def denormalise(self, latent_BChw: torch.Tensor) -> torch.Tensor:
        return latent_BChw * self.latent_std.view(1, -1, 1, 1) + self.latent_mean.view(1, -1, 1, 1)


def _count(sd: Mapping[str, torch.Tensor], stack: str) -> int:
    return len({m.group(2) for k in sd if (m := _BLOCK.match(k)) and m.group(1) == stack})


def detect_official_flowar_config(sd: Mapping[str, torch.Tensor]) -> OfficialFlowARConfig:
    """Width, depth, heads, classes, schedule and the flow head's sizes from an official FlowAR state dict."""
    for key in ("class_emb.weight", "z_proj.weight", "encoder_pos_embed_learned", "flownet.input_proj.weight"):
        if key not in sd:
            raise InputError("this is not an official FlowAR state dict", why=f"key {key!r} is missing")
    width, depth = sd["class_emb.weight"].shape[1], _count(sd, "encoder_blocks")
    if depth == 0 or _count(sd, "decoder_blocks") != depth or "encoder_blocks.0.attn.rope.freqs" not in sd:
        raise InputError("the FlowAR file's encoder and decoder stacks are missing or of different depths")
    head_dim = 4 * sd["encoder_blocks.0.attn.rope.freqs"].numel()
    L, patch_nums = sd["encoder_pos_embed_learned"].shape[1], [1]
    while sum(p * p for p in patch_nums) < L:
        patch_nums.append(2 * patch_nums[-1])
    if sum(p * p for p in patch_nums) != L or width % head_dim:
        raise InputError(
            f"the FlowAR file has {L} positions and width {width}",
            why="FlowAR's scales double from 1 (1 + 4 + 16 + ... positions) and its heads split the width",
        )
    return OfficialFlowARConfig(
        width=width, depth=depth, num_heads=width // head_dim, head_width=sd["flownet.input_proj.weight"].shape[0],
        head_depth=_count(sd, "flownet.res_blocks"), cross="flownet.res_blocks.0.crossattn.q.weight" in sd,
        latent_channels=sd["z_proj.weight"].shape[1], patch_nums=tuple(patch_nums),
        num_classes=sd["class_emb.weight"].shape[0] - 1,
    )  # fmt: skip


def official_flowar_buffers(cfg: OfficialFlowARConfig) -> dict[str, torch.Tensor]:
    """The buffers the official code stores (the scale-causal `mask`, every attention's `rope.freqs`)."""
    out = {"mask": scale_causal_mask(cfg.patch_nums)}
    trunk, head = RopeFrequencies(cfg.width // cfg.num_heads).freqs, RopeFrequencies(64).freqs
    for stack in ("encoder_blocks", "decoder_blocks"):
        out.update({f"{stack}.{i}.attn.rope.freqs": trunk for i in range(cfg.depth)})
    for i in range(cfg.head_depth):
        out[f"flownet.res_blocks.{i}.attn.rope.freqs"] = head
        if cfg.cross:
            out[f"flownet.res_blocks.{i}.crossattn.rope.freqs"] = head
    return out


def _match(reference: Mapping[str, torch.Tensor], sd: Mapping[str, torch.Tensor], what: str) -> None:
    """Raise `InputError` naming the first key missing, unexpected or of another shape than `reference`'s."""
    fix = f"pass {what} as published (a plain state dict)"
    for key in reference:
        if key not in sd:
            raise InputError(f"checkpoint key {key!r} is missing", why=f"not {what}'s layout", fix=fix)
    for key, value in sd.items():
        if key not in reference:
            raise InputError(f"checkpoint key {key!r} is unexpected", why=f"not {what}'s layout", fix=fix)
        if tuple(value.shape) != tuple(reference[key].shape):
            raise InputError(
                f"checkpoint key {key!r} has shape {tuple(value.shape)}, the model expects "
                f"{tuple(reference[key].shape)}", why=f"not {what}'s layout", fix=fix,
            )  # fmt: skip


def _check_buffers(sd: Mapping[str, torch.Tensor], cfg: OfficialFlowARConfig) -> None:
    """The file's mask and RoPE frequencies must be what the official code computes."""
    for key, want in official_flowar_buffers(cfg).items():
        have = sd[key].detach().to("cpu", torch.float32)
        if not torch.allclose(have, want, rtol=1e-6, atol=0):
            raise InputError(f"checkpoint key {key!r} is not the buffer FlowAR's code builds", why="a corrupt file")


def fuse_kl_qkv(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LDM/MAR KL autoencoder keys -> KLAutoencoder's: q, k, v 1x1 convolutions concatenated into `qkv`; the
    training loss's weights (`loss.*`) dropped."""
    out: dict[str, torch.Tensor] = {}
    parts: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        if key.startswith("loss."):
            continue
        m = _QKV.match(key)
        if m is None:
            out[key] = value
        else:
            parts.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = value
    for (prefix, kind), qkv in parts.items():
        if set(qkv) != {"q", "k", "v"}:
            raise InputError(f"the autoencoder's attention {prefix!r} lacks one of q, k, v")
        out[f"{prefix}qkv.{kind}"] = torch.cat((qkv["q"], qkv["k"], qkv["v"]), dim=0)
    return out


def detect_kl_config(sd: Mapping[str, torch.Tensor], latent_size: int, norm_groups: int = 32) -> KLAutoencoderConfig:
    """Channels, multipliers, res blocks, attention and latent channels of a (fused) KL autoencoder."""
    for key in ("encoder.conv_in.weight", "post_quant_conv.weight", "encoder.down.0.block.0.conv1.weight"):
        if key not in sd:
            raise InputError("this is not a KL autoencoder (MAR's kl16.ckpt)", why=f"key {key!r} is missing")
    ch = sd["encoder.conv_in.weight"].shape[0]
    levels = sorted({int(m.group(1)) for k in sd if (m := re.match(r"^encoder\.down\.(\d+)\.", k))})
    blocks = {m.group(1) for k in sd if (m := re.match(r"^encoder\.down\.0\.block\.(\d+)\.", k))}
    return KLAutoencoderConfig(
        latent_channels=sd["post_quant_conv.weight"].shape[0], latent_size=latent_size, channels=ch,
        channel_mult=tuple(sd[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] // ch for i in levels),
        num_res_blocks=len(blocks), norm_groups=norm_groups,
        using_sa=f"encoder.down.{levels[-1]}.attn.0.qkv.weight" in sd,
        using_mid_sa="encoder.mid.attn_1.qkv.weight" in sd,
    )  # fmt: skip


def _assign(model: nn.Module, sd: Mapping[str, torch.Tensor], dtype: torch.dtype, what: str) -> None:
    _match(model.state_dict(), sd, what)
    cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    model.load_state_dict(distinct_storage(cast), assign=True)


def load_official_flowar_model(
    flowar_source: Source, vae_source: Source, *, norm_groups: int = 32, dtype: torch.dtype = torch.float32
) -> OfficialFlowARImageModel:
    """The FlowAR network and MAR's KL autoencoder, every key checked (built on the meta device, then assigned)."""
    sd = read_state_dict(flowar_source, ("model_ema",), ("model",))  # training checkpoints: the EMA weights
    require_layout(sd, "flowar")
    flowar = detect_official_flowar_config(sd)
    raw_vae = read_state_dict(vae_source, ("model",))
    require_layout(raw_vae, "kl-autoencoder")
    vae_sd = fuse_kl_qkv(raw_vae)
    config = OfficialFlowARImageConfig(vae=detect_kl_config(vae_sd, flowar.patch_nums[-1], norm_groups), flowar=flowar)
    with torch.device("meta"):
        model = OfficialFlowARImageModel(config)
    _assign(model.net, sd, dtype, "FlowAR-S/L/H")
    _check_buffers(sd, flowar)
    _assign(model.vae, vae_sd, dtype, "MAR's KL-16 autoencoder")
    model.latent_mean = torch.zeros(flowar.latent_channels, dtype=dtype)
    model.latent_std = torch.full((flowar.latent_channels,), 1.0 / MAR_LATENT_SCALE, dtype=dtype)
    assert not any(t.is_meta for t in (*model.parameters(), *model.buffers()))
    return model.eval()


def official_times(num_steps: int, *, device: torch.device | str | None = None) -> torch.Tensor:
    """The official Euler times, decreasing from 1 (noise) to 0: num_steps // 2 from 1 to 0.3, then
    num_steps // 2 + 1 from 0.25 to 0 (num_steps - 1 steps); 50 steps: uniform (50 steps)."""
    if num_steps < 2:
        raise UsageError(f"official FlowAR sampling needs num_steps >= 2, got {num_steps}", fix="e.g. 25")
    if num_steps == 50:
        return torch.linspace(1, 0, 51, dtype=torch.float64, device=device)
    first = torch.linspace(1, 0.3, num_steps // 2, dtype=torch.float64, device=device)
    return torch.cat((first, torch.linspace(0.25, 0, num_steps // 2 + 1, dtype=torch.float64, device=device)))


@torch.no_grad()
def stream_official_scales(
    model: OfficialFlowARImageModel, labels_B: torch.Tensor, *, generator: torch.Generator,
    settings: FlowARSamplingConfig,
) -> Iterator[FlowARScale]:  # fmt: skip
    """Sample scale by scale as the official `sample_tokens` does, yielding each scale's (scaled) latent."""
    net, cfg = model.net, model.config.flowar
    check_labels(labels_B, cfg.num_classes)
    B, C, pns = labels_B.shape[0], cfg.latent_channels, cfg.patch_nums
    guided = settings.guidance_scale != 1.0
    labels = torch.cat((labels_B, torch.full_like(labels_B, cfg.num_classes))) if guided else labels_B
    cond, cache = net.class_emb(labels), net.new_cache()
    times, x_in = official_times(settings.num_steps), None
    for si, pn in enumerate(pns):
        z = net.forward_scale(si, x_in, cond, cache)  # R, n, C
        noise = torch.randn(B, pn * pn, C, generator=generator, device=generator.device).to(z.device, z.dtype)
        scale = guidance_ramp(settings.guidance_scale, si, len(pns))
        x = sample_head(  # the official sampler treats a cfg of at most 1 as no guidance
            net.flownet, z, noise, times=times, guidance_scale=max(scale, 1.0),
            guidance_interval=settings.guidance_interval,
        )  # fmt: skip
        latent = x.transpose(1, 2).reshape(B, C, pn, pn).float()
        yield FlowARScale(si, latent, z[:B])
        if si + 1 < len(pns):
            nxt = next_scale_input(latent, pns[si + 1], pns[-1]).flatten(2).transpose(1, 2).to(z.dtype)
            x_in = nxt.repeat(2, 1, 1) if guided else nxt


def save_official_flowar(
    model: OfficialFlowARImageModel, directory: str | Path, *, card: str | None = None,
    dtype: torch.dtype | None = None, sampling: FlowARSamplingConfig | None = None, force: bool = False,
) -> Path:  # fmt: skip
    """Write `config.yaml` (kind flowar-official) + `model.safetensors` (`vae.*`, `net.*`, latent scaling)."""
    cfg = model.config
    config = class_checkpoint_config(OFFICIAL_FLOWAR_KIND, cfg, cfg.flowar.num_classes, (), sampling)
    return save_pretrained(directory, model, config, card, dtype, force=force)


def load_official_flowar_checkpoint(directory: str | Path) -> OfficialFlowARImageModel:
    """Read a `flowar-official` directory (strict)."""
    config = read_class_checkpoint(
        directory, OFFICIAL_FLOWAR_KIND, OfficialFlowARImageConfig, "an official FlowAR", "pass a flowar-official one"
    )
    model = OfficialFlowARImageModel(config)
    load_weights(model, directory, strict=True)
    return model.eval()


def convert_official_flowar(
    flowar_source: Source, vae_source: Source, directory: str | Path, *, norm_groups: int = 32,
    dtype: torch.dtype | None = None, force: bool = False,
) -> Path:  # fmt: skip
    """`genmotion convert flowar --flowar F --vae kl16.ckpt -o DIR`: a `flowar-official` directory whose sampling
    defaults are the README's evaluation settings for the model's size."""
    model = load_official_flowar_model(flowar_source, vae_source, norm_groups=norm_groups)
    width = model.config.flowar.width
    name = {768: "FlowAR-S", 1024: "FlowAR-L", 1536: "FlowAR-H"}.get(width, f"FlowAR (width {width})")
    card = f"# {name}\n\nConverted from the official FlowAR checkpoint (OliverRen/FlowAR) and MAR's KL-16 VAE.\n"
    sampling = _OFFICIAL_SAMPLING.get(width, _OFFICIAL_SAMPLING[1024])
    return save_official_flowar(model, directory, card=card, dtype=dtype, sampling=sampling, force=force)
