"""Task `var-watermark-tokenizer`: fine-tune a copy of a VAR checkpoint's encoder and decoder into the LBW watermark
pair (`genmotion.image_core.watermark_vae`), the quantizer, codebook and transformer frozen.

Token maps come half from the VAR model itself (a pool sampled once with random keys, two thirds hard, one soft) and
half from the frozen encoder on toy-world images; at the watermarked scales a share of their codes is re-drawn at
random, as a watermark would move them. Per batch: decode with the new decoder; the fidelity loss holds the image
to the frozen decoder's image of the same tokens; the image goes through random attacks (uint8 rounding, JPEG
straight-through, 0.5x resize and back, noise, blur); the new encoder's teacher-forced residual distances are
trained (cross-entropy) to give back the codes at every scale and their code group at the watermarked ones. The
new encoder also keeps reconstructing clean images through the new decoder.

Axes: B batch, V vocabulary, l tokens of one scale.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genmotion.config import to_dict
from genmotion.errors import UsageError
from genmotion.image_core.data import ImageDataConfig, image_batches
from genmotion.image_core.watermark import GROUPS, Mode, Watermark, code_groups
from genmotion.image_core.watermark_vae import WatermarkPair, scale_logits
from genmotion.metrics import psnr

__all__ = ["WATERMARK_TOKENIZER_KIND", "WatermarkTokenizerTask", "WatermarkTrainModel", "attack_batch", "cycle_loss"]

log = logging.getLogger(__name__)
WATERMARK_TOKENIZER_KIND = "var-watermark-tokenizer"
_POOL_MODES: tuple[Mode, ...] = ("hard", "soft", "hard")  # hard codes are the ones the frozen tokenizer loses
EVAL_KEY = "7a11c0de5eed0b1e"  # the held-out key of `evaluate` (the pool's keys are random)


@dataclass(frozen=True, kw_only=True)
class WatermarkTrainModel:
    """`model:` of task var-watermark-tokenizer."""

    base: str = "var-toy"  # the var checkpoint (name or directory) whose tokenizer the pair copies
    fine_scales: int = 2  # the watermarked scales: the last ones (as `Watermark.scales`)
    groups: int = GROUPS  # code groups of the watermark
    pool_images: int = 1536  # token maps sampled once from the VAR model (two thirds hard, one soft)
    redraw: float = 0.3  # share of the watermarked scales' codes re-drawn at random
    temperature: float = 0.01  # of the squared code distances in the read-back cross-entropy
    fidelity_weight: float = 200.0  # MSE to the frozen decoder's image (no L1: it tolerates sparse blotches)
    code_weight: float = 0.5  # code cross-entropy, every scale
    group_weight: float = 1.0  # group cross-entropy, watermarked scales
    recon_weight: float = 1.0  # clean-image reconstruction through the new pair
    noise_sigma: float = 0.12  # largest Gaussian noise of the attacks, in [-1, 1] units

    def __post_init__(self) -> None:
        if not 0.0 <= self.redraw <= 1.0 or self.temperature <= 0 or self.fine_scales < 1:
            raise ValueError("model.redraw must lie in [0, 1], model.temperature be > 0 and fine_scales >= 1")


def _jpeg_batch(x_B3HW: torch.Tensor, qualities: list[int]) -> torch.Tensor:
    """Real JPEG of [-1, 1] images at per-image quality, as a [-1, 1] tensor (no gradient)."""
    from PIL import Image

    arrays = ((x_B3HW.detach().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for a, q in zip(arrays, qualities, strict=True):
        buffer = io.BytesIO()
        Image.fromarray(a).save(buffer, format="JPEG", quality=q)
        buffer.seek(0)
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(x_B3HW.device)


def _blur(x_B3HW: torch.Tensor, sigma: float) -> torch.Tensor:
    t = torch.arange(-1, 2, dtype=x_B3HW.dtype, device=x_B3HW.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k2 = (k[:, None] * k[None, :]) / k.sum() ** 2
    return F.conv2d(F.pad(x_B3HW, (1, 1, 1, 1), mode="replicate"), k2.expand(3, 1, 3, 3), groups=3)


def attack_batch(x_B3HW: torch.Tensor, generator: torch.Generator, noise_sigma: float) -> torch.Tensor:
    """A random attack per image of (B, 3, H, W) in [-1, 1], differentiable or straight-through: clean, JPEG
    (quality 50-95), 0.5x bicubic resize and back, JPEG after the resize, Gaussian noise, 3x3 blur; always rounded
    to uint8 levels (straight-through), as a saved image is."""
    B, _, H, W = x_B3HW.shape
    kind = torch.randint(6, (B,), generator=generator)
    small = F.interpolate(x_B3HW, size=(H // 2, W // 2), mode="bicubic", antialias=True)
    resized = F.interpolate(small, size=(H, W), mode="bicubic").clamp(-1, 1)
    sigma = noise_sigma * torch.rand(B, 1, 1, 1, generator=generator).to(x_B3HW.device)
    noisy = x_B3HW + sigma * torch.randn(x_B3HW.shape, generator=generator).to(x_B3HW.device)
    blurred = _blur(x_B3HW, 0.5 + 0.5 * float(torch.rand((), generator=generator)))
    qualities = torch.randint(50, 96, (B,), generator=generator).tolist()
    jpeg = x_B3HW + (_jpeg_batch(x_B3HW, qualities) - x_B3HW).detach()
    jpeg_resized = resized + (_jpeg_batch(resized, qualities) - resized).detach()
    choices = torch.stack([x_B3HW, jpeg, resized, jpeg_resized, noisy.clamp(-1, 1), blurred])  # (6, B, 3, H, W)
    out = choices[kind.to(x_B3HW.device), torch.arange(B, device=x_B3HW.device)]
    levels = ((out.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1
    return out + (levels - out).detach()


def _redraw(indices: list[torch.Tensor], scales: tuple[int, ...], share: float, vocab: int,
            generator: torch.Generator) -> list[torch.Tensor]:  # fmt: skip
    """Per-scale indices (B, l) with a `share` of the tokens of `scales` replaced by uniformly random codes."""
    out = list(indices)
    for s in scales:
        swap = torch.rand(out[s].shape, generator=generator) < share
        random = torch.randint(vocab, out[s].shape, generator=generator)
        out[s] = torch.where(swap.to(out[s].device), random.to(out[s].device), out[s])
    return out


def cycle_loss(pair: WatermarkPair, reference: Any, indices: list[torch.Tensor], groups_V: torch.Tensor,
               scales: tuple[int, ...], cfg: WatermarkTrainModel, generator: torch.Generator,
               ) -> tuple[torch.Tensor, dict[str, float]]:  # fmt: skip
    """Fidelity + read-back loss of token maps `indices` (per scale (B, l)) through `pair`'s decoder, a random
    attack and `pair`'s encoder; `reference` is the frozen `VQVAE` (its quantizer and decoder)."""
    q = reference.quantize
    with torch.no_grad():
        f_hat = q.indices_to_fhat(indices)
        target = reference.fhat_to_image(f_hat)
    raw = pair.decode_raw(f_hat)
    fidelity = F.mse_loss(raw, target)
    attacked = attack_batch(raw.clamp(-1, 1), generator, cfg.noise_sigma)
    logits = scale_logits(q, pair.image_to_latent(attacked), indices, cfg.temperature)
    pairs = zip(logits, indices, strict=True)
    code_ce = torch.stack([F.cross_entropy(lg.flatten(0, 1), idx.flatten()) for lg, idx in pairs]).mean()
    group_ce, group_hits = raw.new_zeros(()), []
    M = int(groups_V.max()) + 1
    for s in scales:
        lp = logits[s].log_softmax(-1)  # (B, l, V)
        by_group = torch.stack([lp[..., groups_V == m].logsumexp(-1) for m in range(M)], -1)  # (B, l, M)
        truth = groups_V[indices[s]]
        group_ce = group_ce + F.nll_loss(by_group.flatten(0, 1), truth.flatten()) / len(scales)
        group_hits.append(float((by_group.argmax(-1) == truth).float().mean()))
    loss = cfg.fidelity_weight * fidelity + cfg.code_weight * code_ce + cfg.group_weight * group_ce
    logs = {"fidelity": fidelity.item(), "code_ce": code_ce.item(), "group_ce": group_ce.item(),
            "group_read": sum(group_hits) / len(group_hits),
            "psnr_to_reference": psnr(raw.detach().clamp(-1, 1), target, data_range=2.0)}  # fmt: skip
    return loss, logs


class WatermarkTokenizerTask:
    """Task `var-watermark-tokenizer` (see `genmotion.train.task.Task`); the model is a `WatermarkPair`."""

    model_config = WatermarkTrainModel
    data_config = ImageDataConfig

    def __init__(self) -> None:
        self._cfg = WatermarkTrainModel()
        self._generator = torch.Generator().manual_seed(0)
        self._pipe: Any = None
        self._pool: list[torch.Tensor] | None = None
        self._groups: torch.Tensor | None = None

    def build_model(self, model_cfg: WatermarkTrainModel) -> nn.Module:
        import genmotion
        from genmotion.image_core.pipeline import VARPipeline

        self._cfg = model_cfg
        pipe = genmotion.load(model_cfg.base, device="cpu")
        if not isinstance(pipe, VARPipeline) or type(pipe).kind != "var":
            raise UsageError(f"model.base must be a var checkpoint, {model_cfg.base} is {pipe.kind}")
        pipe.model.requires_grad_(False)
        self._pipe = pipe
        self._groups = code_groups(pipe.model.vae.quantize.embedding.weight, model_cfg.groups)
        return WatermarkPair.from_vae(pipe.model.vae).train()

    @property
    def scales(self) -> tuple[int, ...]:
        K = len(self._pipe.model.vae.patch_nums)
        return tuple(range(K - self._cfg.fine_scales, K))

    def _token_pool(self) -> list[torch.Tensor]:
        """Token maps (per scale (N, l)) sampled once from the VAR model: random classes and keys, two thirds hard
        and one soft (plain tokens come from the encoded images; seeded, so a resumed run gets the same pool)."""
        if self._pool is None:
            g = torch.Generator().manual_seed(1)
            n, chunks = self._cfg.pool_images, []
            for i, start in enumerate(range(0, n, 64)):
                size = min(64, n - start)
                labels = torch.randint(self._pipe.num_classes, (size,), generator=g).tolist()
                key = bytes(torch.randint(256, (16,), generator=g).tolist()).hex()
                wm = Watermark(key, mode=_POOL_MODES[i % len(_POOL_MODES)])
                result = self._pipe.generate(labels, num_images=size, generator=g, watermark=wm)
                chunks.append(result.tokens)
            self._pool = [torch.cat([c[k] for c in chunks]) for k in range(len(chunks[0]))]
            log.info("sampled a pool of %d token maps", n)
        return self._pool

    def dataloader(self, data_cfg: ImageDataConfig, batch_size: int, seed: int, rank: int, world_size: int) -> Any:
        self._generator.manual_seed(seed)
        return image_batches(data_cfg, batch_size, seed, rank, world_size)

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(model, WatermarkPair) and self._groups is not None
        images, _ = batch
        reference, cfg, g = self._pipe.model.vae, self._cfg, self._generator
        pool = self._token_pool()
        half = images.shape[0] // 2
        pick = torch.randint(pool[0].shape[0], (images.shape[0] - half,), generator=g)
        with torch.no_grad():
            encoded = reference.encode(images[:half])
        indices = [torch.cat([e, p[pick]]) for e, p in zip(encoded, pool, strict=True)]
        indices = _redraw(indices, self.scales, cfg.redraw, reference.quantize.vocab_size, g)
        loss, logs = cycle_loss(model, reference, indices, self._groups, self.scales, cfg, g)
        f_hat, vq = reference.quantize(model.image_to_latent(images))
        recon = F.mse_loss(model.decode_raw(f_hat), images)
        logs["recon_mse"] = recon.item()
        return loss + cfg.recon_weight * (recon + vq), logs

    def checkpoint_config(self, model_cfg: WatermarkTrainModel, data_cfg: ImageDataConfig) -> dict[str, Any]:
        return {"kind": WATERMARK_TOKENIZER_KIND, "base": model_cfg.base, "train": to_dict(model_cfg)}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, model_cfg: WatermarkTrainModel, data_cfg: ImageDataConfig) -> dict[str, float]:
        """Hard-watermarked samples of a fresh key (48): PSNR of the pair's decoding against the frozen decoder's,
        and the share of watermarked-scale groups the pair's encoder gives back (free-running, as detection)."""
        from genmotion.image_core.watermark_vae import watermark_tokenizer

        assert isinstance(model, WatermarkPair) and self._groups is not None
        vae = watermark_tokenizer(self._pipe.model.vae, model)
        g = torch.Generator().manual_seed(12345)
        wm = Watermark(EVAL_KEY, mode="hard")
        tokens = self._pipe.generate([i % 12 for i in range(48)], num_images=48, generator=g, watermark=wm).tokens
        f_hat = vae.quantize.indices_to_fhat(tokens)
        image = vae.fhat_to_image(f_hat)
        read = vae.encode(((image + 1) * 127.5).round() / 127.5 - 1)
        kept = [float((self._groups[read[s]] == self._groups[tokens[s]]).float().mean()) for s in self.scales]
        return {"eval_psnr_to_reference_db": psnr(image, self._pipe.model.vae.fhat_to_image(f_hat), data_range=2.0),
                "eval_groups_kept": sum(kept) / len(kept)}  # fmt: skip
