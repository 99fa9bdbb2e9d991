"""Training tasks of the VAR family for `genmotion train`: `var-tokenizer` (the multi-scale VQ tokenizer) and
`var` (the next-scale transformer on a frozen tokenizer), on toy-world classes or a class-per-folder tree.

Both follow VAR (Tian et al., 2024): the tokenizer learns reconstruction + the multi-scale VQ loss (no GAN
or perceptual terms at this size); the transformer learns teacher-forced cross-entropy over all scales
with labels dropped to the null class for guidance. `model.init_from` fine-tunes from a checkpoint
directory (e.g. the output of `genmotion convert var`); exports load with `load_image_model`.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from genmotion.checkpoint import load_weights, read_checkpoint_config
from genmotion.config import from_dict, to_dict
from genmotion.errors import InputError, UsageError
from genmotion.image_core.config import VARConfig, VARImageConfig, VARSamplingConfig
from genmotion.image_core.convert import image_checkpoint_config, load_image_model, load_official_vqvae
from genmotion.image_core.data import ImageDataConfig, class_names, image_batches, toy_class_accuracy
from genmotion.image_core.markov import mask_loss
from genmotion.image_core.model import VARImageModel
from genmotion.image_core.sampler import sample_images
from genmotion.image_core.var_model import drop_labels
from genmotion.metrics import psnr
from genmotion.nn.resample import resample_down
from genmotion.nn.vqvae import VQVAE
from genmotion.nn.vqvae_config import VQVAEConfig
from genmotion.pipeline import to_uint8

__all__ = [
    "TOKENIZER_KIND",
    "VARTask",
    "VARTrainModel",
    "VQVAETask",
    "VQVAETrainModel",
    "load_tokenizer",
    "restart_dead_codes",
    "update_codebook_ema",
]

log = logging.getLogger(__name__)
TOKENIZER_KIND = "var-tokenizer"
# Architecture fields a fine-tuned transformer must share with its `init_from` checkpoint.
_ARCHITECTURE = ("depth", "head_dim", "vocab_size", "latent_channels", "patch_nums", "mlp_ratio", "shared_aln")


@dataclass(frozen=True, kw_only=True)
class VQVAETrainModel:
    """`model:` of task var-tokenizer."""

    vae: VQVAEConfig = field(default_factory=VQVAEConfig)
    init_from: str | None = None  # a tokenizer to fine-tune: var-tokenizer/var directory or official vae .pth
    restart_every: int = 25  # steps between dead-code restarts (0: never)
    l1_weight: float = 1.0  # reconstruction = MSE + l1_weight * L1
    # "gradient": codes learn from the VQ loss (official); "ema": codes move to the running mean of the
    # residuals assigned to them (k-means style, VQ-VAE-2): far fewer steps on small budgets
    codebook: Literal["gradient", "ema"] = "gradient"
    ema_decay: float = 0.8


@dataclass(frozen=True, kw_only=True)
class VARTrainModel:
    """`model:` of task var. `vae`/`var` may be left out when `tokenizer`/`init_from` determine them."""

    var: VARConfig | None = None
    vae: VQVAEConfig | None = None
    tokenizer: str | None = None  # var-tokenizer or var directory, or an official vae .pth
    init_from: str | None = None  # a var directory (e.g. from `genmotion convert var`) to fine-tune
    label_drop: float = 0.1  # probability of training a label as the null class (for guidance)
    sampling: VARSamplingConfig = field(default_factory=VARSamplingConfig)  # shipped as the default


def load_tokenizer(source: str | Path, patch_nums: tuple[int, ...] | None = None) -> VQVAE:
    """A tokenizer from a var-tokenizer or var checkpoint directory, or an official `vae_*.pth` file."""
    path = Path(source)
    if path.is_file():
        return load_official_vqvae(path, patch_nums=patch_nums)
    raw = read_checkpoint_config(path)
    if raw["kind"] == "var":
        return load_image_model(path).vae
    if raw["kind"] != TOKENIZER_KIND:
        raise InputError(f"{path} holds a {raw['kind']!r} checkpoint", fix="pass a var-tokenizer or var checkpoint")
    vae = VQVAE(from_dict(VQVAEConfig, raw["vae"], prefix="vae"))
    load_weights(vae, path)
    return vae.eval()


@torch.no_grad()
def restart_dead_codes(vae: VQVAE, images: torch.Tensor, generator: torch.Generator, threshold: float = 0.03) -> int:
    """Move codes whose usage (`ema_vocab_hit_SV`, all scales) fell below `threshold` hits per batch onto
    residual vectors of this batch, so the codebook stays in use; returns how many moved."""
    q = vae.quantize
    dead = (q.ema_vocab_hit_SV.sum(0) < threshold).nonzero().squeeze(1)
    if dead.numel() == 0:
        return 0
    f = vae.image_to_latent(images).float()
    f_hats = q.f_to_fhats(f)
    rests = [f] + [f - fh for fh in f_hats[:-1]]  # what each scale quantises, before downsampling
    pool = torch.cat(
        [resample_down(r, (pn, pn), q.resample).permute(0, 2, 3, 1).reshape(-1, f.shape[1])
         for r, pn in zip(rests, q.patch_nums, strict=True)]
    )  # fmt: skip
    pick = torch.randint(pool.shape[0], (dead.numel(),), generator=generator, device=generator.device)
    q.embedding.weight[dead] = pool[pick.to(pool.device)].to(q.embedding.weight.dtype)
    q.ema_vocab_hit_SV[:, dead] = 1.0  # give them time to be used before the next check
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.broadcast(q.embedding.weight, src=0)  # every rank keeps rank 0's codebook
    return int(dead.numel())


@torch.no_grad()
def update_codebook_ema(vae: VQVAE, f_BCHW: torch.Tensor, decay: float) -> None:
    """Move each used code to `decay` * itself + (1 - decay) * the mean residual assigned to it, over all scales."""
    q = vae.quantize
    f = f_BCHW.detach().float()
    indices, f_hats = q.f_to_indices(f), q.f_to_fhats(f)
    C, V = f.shape[1], q.vocab_size
    sums, counts = f.new_zeros(V, C), f.new_zeros(V)
    for idx, prev, pn in zip(indices, [torch.zeros_like(f), *f_hats[:-1]], q.patch_nums, strict=True):
        rest = resample_down(f - prev, (pn, pn), q.resample).permute(0, 2, 3, 1).reshape(-1, C)
        sums.index_add_(0, idx.flatten(), rest)
        counts += torch.bincount(idx.flatten(), minlength=V).float()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(sums)
        torch.distributed.all_reduce(counts)
    used = counts > 0
    means = sums[used] / counts[used, None]
    weight = q.embedding.weight
    weight[used] = (decay * weight[used].float() + (1 - decay) * means).to(weight.dtype)


def _to_uint8(images_B3HW: torch.Tensor) -> torch.Tensor:
    """[-1, 1] (B, 3, H, W) -> uint8 (B, H, W, 3) as a tensor."""
    return torch.from_numpy(to_uint8(images_B3HW))


def _eval_batch(data_cfg: ImageDataConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed held-out batch (seed 12345) of `eval_images` fresh images (never the training pool) and labels."""
    fresh = dataclasses.replace(data_cfg, num_images=0)
    return next(iter(image_batches(fresh, data_cfg.eval_images, seed=12345, rank=0, world_size=1)))


class VQVAETask:
    """Task `var-tokenizer` (see `genmotion.train.task.Task`)."""

    model_config = VQVAETrainModel
    data_config = ImageDataConfig

    def __init__(self) -> None:
        self._steps = 0
        self._generator = torch.Generator().manual_seed(0)
        self._cfg = VQVAETrainModel()

    def build_model(self, model_cfg: VQVAETrainModel) -> nn.Module:
        self._cfg = model_cfg  # `loss` reads the restart and L1 settings
        if model_cfg.init_from:
            vae = load_tokenizer(model_cfg.init_from, model_cfg.vae.patch_nums)
            if vae.config != model_cfg.vae:
                raise UsageError(
                    f"model.vae does not match the tokenizer in {model_cfg.init_from}",
                    why=f"the checkpoint has {vae.config}",
                    fix="copy its vae section into the YAML (only patch_nums may differ from the file)",
                )
            return vae.train()
        vae = VQVAE(model_cfg.vae)
        if model_cfg.codebook == "ema":
            vae.quantize.embedding.weight.requires_grad_(False)
        return vae

    def dataloader(self, data_cfg: ImageDataConfig, batch_size: int, seed: int, rank: int, world_size: int) -> Any:
        self._generator.manual_seed(seed)
        return image_batches(data_cfg, batch_size, seed, rank, world_size)

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(model, VQVAE)
        images, _ = batch
        cfg = self._cfg
        self._steps += 1
        logs: dict[str, float] = {}
        if self._steps == 1 or (cfg.restart_every and self._steps % cfg.restart_every == 0):
            logs["restarted_codes"] = float(restart_dead_codes(model, images, self._generator))
        f = model.image_to_latent(images)
        f_hat, vq_loss = model.quantize(f)
        recon = model.decoder(model.post_quant_conv(f_hat))
        if cfg.codebook == "ema":
            update_codebook_ema(model, f, cfg.ema_decay)
        mse = F.mse_loss(recon, images)
        loss = mse + cfg.l1_weight * F.l1_loss(recon, images) + vq_loss
        logs.update(mse=mse.item(), vq=vq_loss.item())
        return loss, logs

    def checkpoint_config(self, model_cfg: VQVAETrainModel, data_cfg: ImageDataConfig) -> dict[str, Any]:
        return {"kind": TOKENIZER_KIND, "vae": to_dict(model_cfg.vae)}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, model_cfg: VQVAETrainModel, data_cfg: ImageDataConfig) -> dict[str, float]:
        """Reconstruction PSNR, codebook use and (toy world) the class the detector reads back."""
        assert isinstance(model, VQVAE)
        images, labels = _eval_batch(data_cfg)
        images = images.to(next(model.parameters()).device)
        recon = model.reconstruct(images)
        used = torch.cat([i.flatten() for i in model.encode(images)]).unique().numel()
        out = {
            "eval_psnr_db": psnr(recon.float(), images.float(), data_range=2.0),
            "eval_codebook_use": used / model.config.vocab_size,
        }
        if data_cfg.source == "toyworld":
            out["eval_recon_class_accuracy"] = toy_class_accuracy(_to_uint8(recon), labels)
        return out


class VARTask:
    """Task `var` (see `genmotion.train.task.Task`): the transformer learns on a frozen tokenizer."""

    model_config = VARTrainModel
    data_config = ImageDataConfig
    model_class: type[nn.Module] = VARImageModel  # what build_model makes (evaluate checks it)

    def __init__(self) -> None:
        self._generator = torch.Generator().manual_seed(0)
        self._resolved: VARImageConfig | None = None
        self._label_drop = 0.1

    def build_model(self, model_cfg: VARTrainModel) -> nn.Module:
        if model_cfg.label_drop < 0 or model_cfg.label_drop >= 1:
            raise UsageError(f"model.label_drop must be in [0, 1), got {model_cfg.label_drop}")
        self._label_drop = model_cfg.label_drop
        model = self._init_from(model_cfg) if model_cfg.init_from else self._fresh(model_cfg)
        model.vae.requires_grad_(False)
        model.vae.eval()
        self._resolved = model.config
        return model

    def _fresh(self, cfg: VARTrainModel) -> VARImageModel:
        if cfg.var is None or not cfg.tokenizer:
            raise UsageError(
                "task var needs model.var and model.tokenizer (or model.init_from)",
                fix="set model.tokenizer to a trained var-tokenizer directory, or model.init_from to a var directory",
            )
        vae = load_tokenizer(cfg.tokenizer, cfg.var.patch_nums)
        if cfg.vae is not None and cfg.vae != vae.config:
            raise UsageError(f"model.vae does not match the tokenizer in {cfg.tokenizer}", fix="leave model.vae out")
        try:
            config = VARImageConfig(vae=vae.config, var=cfg.var)
        except ValueError as e:
            raise UsageError(f"model.var does not fit the tokenizer in {cfg.tokenizer}", why=str(e)) from e
        model = VARImageModel(config)
        model.vae = vae
        model.var.init_weights()
        return model

    def _init_from(self, cfg: VARTrainModel) -> VARImageModel:
        assert cfg.init_from is not None
        base = load_image_model(cfg.init_from)
        if cfg.tokenizer:
            base.vae = load_tokenizer(cfg.tokenizer, base.config.var.patch_nums)
        want = cfg.var or base.config.var
        diff = [f for f in _ARCHITECTURE if getattr(want, f) != getattr(base.config.var, f)]
        if diff:
            raise UsageError(
                f"model.var differs from {cfg.init_from} in {', '.join(diff)}",
                why="fine-tuning keeps the architecture of the checkpoint",
                fix="leave model.var out, or change only num_classes and the dropout rates",
            )
        try:
            config = VARImageConfig(vae=base.vae.config, var=want)
        except ValueError as e:
            raise UsageError(
                f"model.tokenizer does not fit the transformer in {cfg.init_from}",
                why=str(e),
                fix="leave model.tokenizer out (set it to null) to keep the checkpoint's own tokenizer",
            ) from e
        model = VARImageModel(config)
        model.vae = base.vae
        state = base.var.state_dict()
        if want.num_classes != base.config.var.num_classes:  # a new label set: fresh class embedding
            log.warning(
                "num_classes %d -> %d: the class embedding starts fresh", base.config.var.num_classes, want.num_classes
            )
            state.pop("class_emb.weight")
        state.pop("attn_bias_for_masking")  # derived from the new config (a VAR -> HMAR/MVAR fine-tune changes it)
        missing, _ = model.var.load_state_dict(state, strict=False)
        if want.mask_depth and any(k.startswith("mask_") for k in missing):
            model.var.init_mask_branch()  # HMAR from a VAR: the refinement branch starts as the last blocks
        return model

    def dataloader(self, data_cfg: ImageDataConfig, batch_size: int, seed: int, rank: int, world_size: int) -> Any:
        self._generator.manual_seed(seed)
        if self._resolved is not None and self._resolved.vae.image_size != data_cfg.image_size:
            raise UsageError(
                f"data.image_size is {data_cfg.image_size} but the tokenizer makes {self._resolved.vae.image_size} px",
                fix=f"set data.image_size: {self._resolved.vae.image_size}",
            )
        return image_batches(data_cfg, batch_size, seed, rank, world_size)

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(model, VARImageModel)
        images, labels = batch
        with torch.no_grad():
            indices = model.vae.encode(images)  # K x (B, l)
            x_BLCv = model.vae.quantize.idxBl_to_var_input(indices)
        labels = drop_labels(labels, model.var.num_classes, self._label_drop, self._generator)
        logits_BLV = model.var(labels, x_BLCv)
        target_BL = torch.cat(indices, dim=1)
        loss = F.cross_entropy(logits_BLV.flatten(0, 1), target_BL.flatten())
        accuracy = (logits_BLV.argmax(-1) == target_BL).float().mean()
        logs = {"token_accuracy": accuracy.item()}
        if model.var.config.mask_depth:  # HMAR: the refinement branch learns to fill hidden tokens of a scale
            refine, logs["mask_accuracy"] = mask_loss(
                model.var, model.vae.quantize, labels, indices, x_BLCv, self._generator
            )
            logs["mask_loss"] = refine.item()
            loss = loss + refine
        return loss, logs

    def checkpoint_config(self, model_cfg: VARTrainModel, data_cfg: ImageDataConfig) -> dict[str, Any]:
        assert self._resolved is not None, "build_model runs before the export"
        names = class_names(data_cfg)
        if len(names) != self._resolved.var.num_classes:
            names = ()  # a model with room for more classes than the data names
        return self._config_mapping(names, model_cfg.sampling)

    def _config_mapping(self, names: tuple[str, ...], sampling: VARSamplingConfig) -> dict[str, Any]:
        """The export's `config.yaml` mapping (kind var); a subclass of another kind writes its own."""
        assert self._resolved is not None
        return image_checkpoint_config(self._resolved, names, sampling)

    def _sample(self, model: Any, wanted: torch.Tensor, s: VARSamplingConfig) -> torch.Tensor:
        """Images (N, 3, H, W) in [0, 1] of classes `wanted` with the shipped settings `s`, seed 0 (evaluation)."""
        return sample_images(
            model.var, model.vae, wanted, generator=torch.Generator(device=wanted.device).manual_seed(0),
            guidance_scale=s.guidance_scale, top_k=s.top_k, top_p=s.top_p, temperature=s.temperature,
            refine=s.refine,
        )  # fmt: skip

    @torch.no_grad()
    def evaluate(self, model: nn.Module, model_cfg: VARTrainModel, data_cfg: ImageDataConfig) -> dict[str, float]:
        """Teacher-forced token accuracy on held-out images; on the toy world also the share of samples
        (balanced over classes, the shipped sampling settings) the detector reads as the requested class."""
        assert isinstance(model, self.model_class)
        m: Any = model  # a VARImageModel or a subclass task's own model class: `vae`, `var`
        images, labels = _eval_batch(data_cfg)
        device = next(m.parameters()).device
        indices = m.vae.encode(images.to(device))
        logits = m.var(labels.to(device), m.vae.quantize.idxBl_to_var_input(indices))
        target = torch.cat(indices, dim=1)
        out = {"eval_token_accuracy": float((logits.argmax(-1) == target).float().mean())}
        if data_cfg.source == "toyworld":
            wanted = torch.arange(data_cfg.eval_images, device=device) % m.var.num_classes
            samples = self._sample(m, wanted, model_cfg.sampling)
            out["eval_class_accuracy"] = toy_class_accuracy(_to_uint8(samples.mul(2).sub(1)), wanted)
        return out
