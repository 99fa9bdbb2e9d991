"""FlowAR (Ren et al., 2024): next-scale prediction of continuous latents with a flow-matching head.

The transformer is VAR's (`genmotion.image_core.var_model.VAR`: AdaLN class conditioning, block-causal scale
mask, KV cache), run on a doubling schedule (1, 2, 4, 8, ...) of a KL autoencoder's latent; its "vocabulary"
head is the projection to z, the per-token condition of the flow head (`FlowHead`, one token at a time, or
FlowAR's `FlowNet` over the tokens of a scale). Scale s is the whole (normalised) latent
area-downsampled to pn_s x pn_s, not a residual; the input of scale s + 1 is scale s bicubic-upsampled to the
full latent size and area-downsampled to pn_{s+1} (FlowAR's code). The head learns the velocity of
x_t = (1 - t) x + t eps with target eps - x (t = 1 is noise, FlowAR's convention).

Axis legend: B batch, L tokens of all scales, l tokens of one scale, C latent channels, W widths, N rows of
the head (tokens x flow times), h/w latent size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from genmotion.checkpoint import load_weights, save_pretrained
from genmotion.image_core.convert import class_checkpoint_config, read_class_checkpoint, read_class_metadata
from genmotion.image_core.flowar_config import FLOWAR_KIND, FlowARConfig, FlowARImageConfig, FlowARSamplingConfig
from genmotion.image_core.kl_autoencoder import KLAutoencoder
from genmotion.image_core.official_flowar_model import FlowNet
from genmotion.image_core.var_model import VAR
from genmotion.nn.tiny import timestep_embedding

__all__ = [
    "FlowARImageModel",
    "FlowHead",
    "build_flow_head",
    "flowar_checkpoint_config",
    "load_flowar_model",
    "next_scale_input",
    "read_flowar_metadata",
    "save_flowar_model",
    "scale_targets",
    "teacher_inputs",
]

_TIME_FEATURES = 256


def scale_targets(latent_BChw: torch.Tensor, patch_nums: Sequence[int]) -> list[torch.Tensor]:
    """Ground truth of every scale: the latent area-downsampled to (B, C, pn, pn) (the last is the latent)."""
    size = latent_BChw.shape[-1]
    return [latent_BChw if pn == size else F.interpolate(latent_BChw, size=(pn, pn), mode="area") for pn in patch_nums]


def next_scale_input(scale_BCpp: torch.Tensor, pn_next: int, size: int) -> torch.Tensor:
    """The input map of the next scale: (B, C, pn, pn) bicubic-upsampled to size x size, area-downsampled to
    (B, C, pn_next, pn_next)."""
    up = F.interpolate(scale_BCpp, size=(size, size), mode="bicubic", align_corners=False)
    return up if pn_next == size else F.interpolate(up, size=(pn_next, pn_next), mode="area")


def teacher_inputs(scales: Sequence[torch.Tensor], patch_nums: Sequence[int]) -> torch.Tensor:
    """Teacher forcing: the inputs of scales 1..K-1 from the scales before them, (B, L - 1, C)."""
    size = patch_nums[-1]
    maps = [next_scale_input(s, pn, size) for s, pn in zip(scales[:-1], patch_nums[1:], strict=True)]
    return torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=1)


class _ResBlockAdaLN(nn.Module):
    """x + gate * MLP(LN(x) (1 + scale) + shift), the three vectors from the condition c (N, W)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width, eps=1e-6, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))

    def forward(self, x_NW: torch.Tensor, c_NW: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.ada(c_NW).chunk(3, dim=-1)
        return x_NW + gate * self.mlp(self.norm(x_NW) * (1 + scale) + shift)


class FlowHead(nn.Module):
    """The per-token flow head: an MLP of residual AdaLN blocks on (x_t, t), conditioned on the transformer's z;
    every token is its own row, so the tokens of a scale are drawn independently given z.

    forward(x_t (B, l, C), t (B,) or (B, l), z (B, l, Wz)) -> velocity (B, l, C) of x_t = (1 - t) x + t eps
    (target eps - x).
    """

    def __init__(self, channels: int, z_width: int, width: int, depth: int) -> None:
        super().__init__()
        self.input_proj = nn.Linear(channels, width)
        self.time_mlp = nn.Sequential(nn.Linear(_TIME_FEATURES, width), nn.SiLU(), nn.Linear(width, width))
        self.cond_proj = nn.Linear(z_width, width)
        self.blocks = nn.ModuleList(_ResBlockAdaLN(width) for _ in range(depth))
        self.final_norm = nn.LayerNorm(width, eps=1e-6, elementwise_affine=False)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out = nn.Linear(width, channels)
        with torch.no_grad():  # AdaLN-zero: every block starts as the identity, the velocity at 0
            zeroed = [cast(nn.Linear, cast(_ResBlockAdaLN, b).ada[-1]) for b in self.blocks]
            for layer in [*zeroed, cast(nn.Linear, self.final_ada[-1]), self.out]:
                layer.weight.zero_()
                layer.bias.zero_()

    def forward(self, x_BlC: torch.Tensor, t: torch.Tensor, z_BlW: torch.Tensor) -> torch.Tensor:
        B, tokens, _ = x_BlC.shape
        t_Bl = t[:, None].expand(B, tokens) if t.dim() == 1 else t
        h = self.input_proj(x_BlC)
        time = self.time_mlp(timestep_embedding(t_Bl.reshape(-1), _TIME_FEATURES).to(h.dtype))
        c = time.view(B, tokens, -1) + self.cond_proj(z_BlW.to(h.dtype))
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_ada(c).chunk(2, dim=-1)
        return self.out(self.final_norm(h) * (1 + scale) + shift)


def build_flow_head(config: FlowARConfig) -> nn.Module:
    """The head `config.flow_head` names: `FlowHead` ("token") or FlowAR's `FlowNet` over a scale ("scale",
    AdaLN-zero initialised). Both map (x_t (B, l, C), t (B,), z (B, l, Wz)) -> velocity (B, l, C)."""
    if config.flow_head == "token":
        return FlowHead(config.latent_channels, config.z_width, config.flow_width, config.flow_depth)
    head = FlowNet(
        width=config.flow_width, cond_width=config.z_width, latent_channels=config.latent_channels,
        depth=config.flow_depth, grid=config.patch_nums[-1],
    )  # fmt: skip
    head.zero_init()
    return head


class FlowARImageModel(nn.Module):
    """`vae` (KLAutoencoder) + `var` (VAR transformer, z head) + `head` (`build_flow_head`), and the per-channel latent
    statistics (`latent_mean`, `latent_std`, each (C,)) that normalise the latents the transformer sees."""

    latent_mean: torch.Tensor
    latent_std: torch.Tensor

    def __init__(self, config: FlowARImageConfig) -> None:
        super().__init__()
        self.config = config
        f = config.flowar
        self.vae = KLAutoencoder(config.vae)
        self.var = VAR(f.transformer())
        self.head = build_flow_head(f)
        self.register_buffer("latent_mean", torch.zeros(f.latent_channels))
        self.register_buffer("latent_std", torch.zeros(f.latent_channels))  # 0: not measured yet

    @property
    def patch_nums(self) -> tuple[int, ...]:
        return self.config.flowar.patch_nums

    @property
    def statistics_set(self) -> bool:
        return bool(self.latent_std.gt(0).all())

    @torch.no_grad()
    def set_latent_statistics(self, latents_BChw: torch.Tensor) -> None:
        """Per-channel mean and standard deviation of autoencoder latents (B, C, h, w)."""
        self.latent_mean.copy_(latents_BChw.float().mean(dim=(0, 2, 3)))
        self.latent_std.copy_(latents_BChw.float().std(dim=(0, 2, 3)).clamp_min(1e-6))

    def normalise(self, latent_BChw: torch.Tensor) -> torch.Tensor:
        return (latent_BChw - self.latent_mean.view(1, -1, 1, 1)) / self.latent_std.view(1, -1, 1, 1)

    def denormalise(self, latent_BChw: torch.Tensor) -> torch.Tensor:
        return latent_BChw * self.latent_std.view(1, -1, 1, 1) + self.latent_mean.view(1, -1, 1, 1)

    def teacher_forced(self, label_B: torch.Tensor, latent_BChw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The block-causal forward on a normalised latent: (z (B, L, Wz), targets (B, L, C) of every token)."""
        scales = scale_targets(latent_BChw, self.patch_nums)
        z_BLW = self.var(label_B, teacher_inputs(scales, self.patch_nums))
        return z_BLW, torch.cat([s.flatten(2).transpose(1, 2) for s in scales], dim=1)

    def velocity_loss(
        self, label_B: torch.Tensor, latent_BChw: torch.Tensor, generator: torch.Generator, repeats: int = 1
    ) -> tuple[torch.Tensor, list[float]]:
        """Mean velocity loss over every token of every scale, `repeats` flow times per token (a per-token head)
        or per scale of each image (a scale head), and each scale's mean.

        label_B: (B,) with `num_classes` = null (drop labels beforehand); latent_BChw: normalised latents.
        """
        z_BLW, x_BLC = self.teacher_forced(label_B, latent_BChw)
        z, x = z_BLW.repeat(repeats, 1, 1), x_BLC.repeat(repeats, 1, 1)  # R*B, L, .
        R, L, C = x.shape
        slices = self.var.config.scale_slices
        dev = generator.device
        per_scale_time = self.config.flowar.flow_head == "scale"
        t_RL = torch.rand((R, len(slices)) if per_scale_time else (R, L), generator=generator, device=dev)
        t_RL = t_RL.to(x.device)
        eps = torch.randn(x.shape, generator=generator, device=dev).to(x.device)
        if per_scale_time:  # one flow time per image and scale: the head denoises a scale's tokens together
            counts = [e - b for b, e in slices]
            t_RL = t_RL.repeat_interleave(torch.tensor(counts, device=x.device), dim=1)
        x_t = (1 - t_RL[..., None]) * x + t_RL[..., None] * eps
        if per_scale_time:
            v = torch.cat([self.head(x_t[:, b:e], t_RL[:, b], z[:, b:e]) for b, e in slices], dim=1)
        else:
            v = self.head(x_t, t_RL, z)
        per_token = (v - (eps - x)).square().mean(-1).view(repeats, R // repeats, L)
        per_scale = [float(per_token[..., b:e].detach().mean()) for b, e in slices]
        return per_token.mean(), per_scale


def flowar_checkpoint_config(
    config: FlowARImageConfig, class_names: Sequence[str] = (), sampling: FlowARSamplingConfig | None = None
) -> dict[str, object]:
    """The `config.yaml` mapping of a `flowar` checkpoint."""
    return class_checkpoint_config(FLOWAR_KIND, config, config.flowar.num_classes, class_names, sampling)


def save_flowar_model(
    model: FlowARImageModel,
    directory: str | Path,
    *,
    card: str | None = None,
    dtype: torch.dtype | None = torch.bfloat16,
    class_names: Sequence[str] = (),
    sampling: FlowARSamplingConfig | None = None,
) -> Path:
    """Write `config.yaml` (kind: flowar) + `model.safetensors` (`vae.*`, `var.*`, `head.*`, latent statistics)."""
    return save_pretrained(directory, model, flowar_checkpoint_config(model.config, class_names, sampling), card, dtype)


def read_flowar_metadata(directory: str | Path) -> tuple[tuple[str, ...], FlowARSamplingConfig]:
    """Class names (empty when the checkpoint names none) and default sampling settings of a flowar directory."""
    return read_class_metadata(directory, FlowARSamplingConfig)


def load_flowar_model(directory: str | Path, *, dtype: torch.dtype = torch.float32) -> FlowARImageModel:
    """Read a directory written by `save_flowar_model` or `genmotion train` (task flowar)."""
    config = read_class_checkpoint(directory, FLOWAR_KIND, FlowARImageConfig, "a FlowAR", "pass a flowar checkpoint")
    model = FlowARImageModel(config).to(dtype)
    load_weights(model, directory, strict=True)
    return model.eval()
