"""The measurements of `genmotion bench image`, each a function of a model that returns a JSON-ready dict:

* parity: cached sampling == the block-causal masked forward (tokens with top-k = 1, guidance on);
* speed: VAR-d16 at 256 px with random official-layout weights, batch 1, guidance 2.5 (official cfg 1.5), top-k 900,
  top-p 0.96:
  transformer and decoder seconds, GFLOP (PyTorch's flop counter) and GFLOP/s against the fp32 matmul
  peak measured in the same run, and the same model run the official way (AdaLN recomputed for every
  scale, K/V grown with torch.cat) with identical tokens; bf16 autocast with token agreement and PSNR;
* var-toy: share of samples the toy-world detector reads as the requested class;
* KV policies on var-toy: ScaleKV and HACK cache bytes against the full cache, PSNR against the
  full-cache image of the same seed;
* TTS-VAR on var-toy: class accuracy with 8 candidates against best-of-1 and best-of-8, and what each costs, at the
  shipped guidance, 2 and 1 (off).
The parts are run, merged into one JSON and drawn by `genmotion.image_core.bench_run`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import torch

from genmotion.bench.report import time_median
from genmotion.image_core.config import official_var_config, official_vqvae_config
from genmotion.image_core.kv_policies import ScalePolicy, parse_policy
from genmotion.image_core.sampler import sample_indices
from genmotion.image_core.var_model import VAR
from genmotion.metrics import psnr
from genmotion.nn.quantizer import MultiScaleQuantizer
from genmotion.nn.vqvae import VQVAE
from genmotion.nn.vqvae_config import VQVAEConfig
from genmotion.pipeline import to_uint8
from genmotion.sampling.guidance import guide
from genmotion.sampling.logits import sample_logits

__all__ = [
    "cache_parity",
    "kv_policies",
    "official_style_indices",
    "random_models",
    "speed",
    "toy_accuracy",
    "tts_accuracy",
]

log = logging.getLogger(__name__)
REFERENCE = {  # the official implementation on a 2-core AVX-512 machine (2 threads)
    "transformer_s": 5.8,
    "decode_s": 2.4,
    "transformer_gflop": 563,
    "decode_gflop": 394,
    "fp32_peak_gflops": 183,
}


# ---- the official way, for a side-by-side baseline ----------------------------------------------------
class _GrowingKV:
    """The official cache: per block, K/V concatenated with every new scale (no preallocation)."""

    def __init__(self) -> None:
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def extend(self, k: torch.Tensor, v: torch.Tensor, positions: Any, commit: bool = True) -> tuple[Any, Any, None]:
        if self.k is not None and self.v is not None:
            k, v = torch.cat((self.k, k), dim=2), torch.cat((self.v, v), dim=2)
        self.k, self.v = k, v
        return k, v, None


@torch.no_grad()
def official_style_indices(
    var: VAR, quantizer: MultiScaleQuantizer, labels_B: torch.Tensor, generator: torch.Generator, cfg: float,
    top_k: int, top_p: float,
) -> list[torch.Tensor]:  # fmt: skip
    """VAR's `autoregressive_infer_cfg`: the class condition goes through every block's AdaLN projection
    again at every scale and the caches grow by concatenation. Same sampling calls as `stream_scales`."""
    B, K, Cv, H = labels_B.shape[0], len(var.patch_nums), var.Cvae, var.patch_nums[-1]
    labels = torch.cat((labels_B, torch.full_like(labels_B, var.num_classes)))
    cond_BD = var.class_emb(labels)
    lvl_pos = var.level_positions()
    x = var.start_tokens(cond_BD)
    caches = [_GrowingKV() for _ in var.blocks]
    f_hat, out, cur = torch.zeros(B, Cv, H, H, device=cond_BD.device), [], 0
    for si, pn in enumerate(var.patch_nums):
        cond_blocks = var.shared_ada_lin(cond_BD)
        for block, cache in zip(var.typed_blocks(), caches, strict=True):
            x = block(x, cond_blocks, None, cast(Any, cache))
        logits = var.logits(x, cond_BD)
        t = cfg * si / (K - 1)
        idx = sample_logits(guide(logits[:B], logits[B:], 1.0 + t), generator, 1.0, top_k, top_p)
        out.append(idx)
        h = quantizer.embedding(idx).transpose(1, 2).reshape(B, Cv, pn, pn)
        f_hat, next_map = quantizer.next_autoregressive_input(si, f_hat, h)
        cur += pn * pn
        if si != K - 1:
            nxt = var.patch_nums[si + 1] ** 2
            x = (var.word_embed(next_map.view(B, Cv, -1).transpose(1, 2)) + lvl_pos[:, cur : cur + nxt]).repeat(2, 1, 1)
    return out


# ---- pieces -----------------------------------------------------------------------------------------
def _flops(fn: Callable[[], object]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def _psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of uint8 images; 99 dB stands for identical (JSON has no infinity)."""
    return min(psnr(a, b, data_range=255.0), 99.0)


def random_models(quick: bool) -> tuple[VAR, VQVAE, str]:
    """Random official-layout weights: VAR-d16 + the 256 px tokenizer (quick: depth 4, tokenizer width 32)."""
    g = torch.Generator().manual_seed(0)
    cfg = official_var_config(4 if quick else 16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        var = VAR(cfg)
        vae = VQVAE(VQVAEConfig(channels=32) if quick else official_vqvae_config())
    var.init_weights(generator=g)
    name = "d4 + tokenizer width 32 (quick)" if quick else "VAR-d16 + vae_ch160v4096z32 layout"
    return var.eval(), vae.eval(), name


def cache_parity(var: VAR, quantizer: MultiScaleQuantizer) -> dict[str, Any]:
    """Cached sampling (top-k 1, cfg 1.5) against the block-causal masked forward over its own tokens."""
    labels = torch.tensor([207])
    idx = sample_indices(
        var, quantizer, labels, generator=torch.Generator().manual_seed(0), guidance_scale=2.5, top_k=1
    )
    K = len(var.patch_nums)
    with torch.no_grad():
        x = quantizer.idxBl_to_var_input(idx)
        both = var(torch.cat([labels, torch.full_like(labels, var.num_classes)]), x.repeat(2, 1, 1))
    same = []
    for si, (b, e) in enumerate(var.config.scale_slices):
        guided = guide(both[:1, b:e], both[1:, b:e], 1.0 + 1.5 * si / (K - 1))
        same.append(bool(torch.equal(guided.argmax(-1), idx[si])))
    return {"tokens_identical": all(same), "scales_identical": same, "top_k": 1, "guidance_scale": 2.5}


def _synced(fn: Callable[[], Any], device: torch.device) -> Callable[[], Any]:
    """fn, waiting for the device to finish (timings on CUDA)."""
    if device.type != "cuda":
        return fn

    def run() -> Any:
        out = fn()
        torch.cuda.synchronize(device)
        return out

    return run


def speed(var: VAR, vae: VQVAE, repeats: int, peak: float, with_bf16: bool) -> dict[str, Any]:
    """Transformer and decoder seconds (median), GFLOP/s vs peak, the official way side by side, bf16."""
    device = var.pos_1LC.device
    labels = torch.tensor([207], device=device)
    settings = {"guidance_scale": 2.5, "top_k": 900, "top_p": 0.96}

    def ours() -> list[torch.Tensor]:
        g = torch.Generator(device=device).manual_seed(1)
        return sample_indices(var, vae.quantize, labels, generator=g, **settings)  # type: ignore[arg-type]

    def official() -> list[torch.Tensor]:
        g = torch.Generator(device=device).manual_seed(1)
        return official_style_indices(var, vae.quantize, labels, g, 1.5, 900, 0.96)

    tokens = ours()
    f_hat = vae.quantize.indices_to_fhat(tokens)
    with torch.no_grad():
        image = vae.fhat_to_image(f_hat)
        decode = _synced(lambda: vae.fhat_to_image(f_hat), device)
        t_decode = time_median(decode, warmup=1, repeats=repeats)
        decode_flops = _flops(decode)
    t_ours = time_median(_synced(ours, device), warmup=1, repeats=repeats)
    t_official = time_median(_synced(official, device), warmup=0, repeats=repeats)
    trans_flops = _flops(ours)
    identical = all(torch.equal(a, b) for a, b in zip(tokens, official(), strict=True))
    out: dict[str, Any] = {
        "settings": {**settings, "batch": 1, "repeats": repeats, "decode_included_in_end_to_end": True},
        "transformer_s": t_ours,
        "official_style_transformer_s": t_official,
        "official_style_tokens_identical": identical,
        "decode_s": t_decode,
        "end_to_end_s": t_ours + t_decode,
        "speedup_vs_official_style_end_to_end": (t_official + t_decode) / (t_ours + t_decode),
        "transformer_gflop": trans_flops / 1e9,
        "decode_gflop": decode_flops / 1e9,
        "transformer_gflops": trans_flops / 1e9 / t_ours,
        "decode_gflops": decode_flops / 1e9 / t_decode,
        "transformer_peak_fraction": trans_flops / 1e9 / t_ours / peak,
        "decode_peak_fraction": decode_flops / 1e9 / t_decode / peak,
    }
    # The official code reached 53 % (transformer) and 90 % (decoder) of the fp32 peak on the AVX-512
    # machine (VAR-d16); at those fractions of this machine's peak it would take this long here.
    t_ref = trans_flops / 1e9 / (0.53 * peak) + decode_flops / 1e9 / (0.90 * peak)
    out["official_at_its_peak_fractions_here_s"] = t_ref
    out["speedup_vs_official_normalised_by_peak"] = t_ref / (t_ours + t_decode)
    if with_bf16:
        out["bf16"] = _bf16(vae, _synced(ours, device), tokens, image, t_ours + t_decode)
    return out


def _bf16(vae: VQVAE, ours: Callable[[], list[torch.Tensor]], tokens: list[torch.Tensor], image: torch.Tensor,
          fp32_seconds: float) -> dict[str, Any]:  # fmt: skip
    """The same run under bf16 autocast (weights stay fp32): time, token agreement, PSNR vs the fp32 image."""
    device = image.device
    with torch.autocast(device.type, dtype=torch.bfloat16):
        t_trans = time_median(ours, warmup=1 if device.type == "cuda" else 0, repeats=3 if device.type == "cuda" else 1)
        bf_tokens = ours()
        f_hat = vae.quantize.indices_to_fhat(bf_tokens)
        with torch.no_grad():
            decode = _synced(lambda: vae.fhat_to_image(f_hat), device)
            t_dec = time_median(decode, warmup=0, repeats=1)
            bf_image = vae.fhat_to_image(f_hat).float()
    agree = float(torch.cat([(a == b).flatten() for a, b in zip(tokens, bf_tokens, strict=True)]).float().mean())
    to8 = to_uint8
    return {
        "transformer_s": t_trans,
        "decode_s": t_dec,
        "speedup_vs_fp32_end_to_end": fp32_seconds / (t_trans + t_dec),
        "token_agreement": agree,
        "psnr_vs_fp32_db": _psnr_uint8(to8(image), to8(bf_image)),
    }


def toy_accuracy(pipe: Any, per_class: int) -> dict[str, Any]:
    """Share of var-toy samples (shipped sampling settings) the detector reads as the requested class."""
    from genmotion.image_core.data import classify_toy_images

    labels = [i % pipe.num_classes for i in range(per_class * pipe.num_classes)]
    images = pipe.generate(labels, num_images=len(labels), seed=0).images
    read = classify_toy_images(torch.from_numpy(images))
    per = {pipe.class_names[c]: float(np.mean([r == c for r, t in zip(read, labels, strict=True) if t == c]))
           for c in range(pipe.num_classes)}  # fmt: skip
    return {
        "samples": len(labels),
        "class_accuracy": float(np.mean([r == t for r, t in zip(read, labels, strict=True)])),
        "per_class": per,
        "sampling": dict(vars(pipe.sampling)),
    }


def kv_policies(pipe: Any, samples: int, budget: float) -> dict[str, Any]:
    """ScaleKV and HACK at `budget` against the full cache: bytes, PSNR, token agreement, class accuracy."""
    from genmotion.image_core.data import classify_toy_images
    from genmotion.image_core.profile import profile_var_heads

    profile = pipe.head_profile or profile_var_heads(
        pipe.model.var, pipe.model.vae.quantize, generator=torch.Generator().manual_seed(0)
    )
    labels = [i % pipe.num_classes for i in range(samples)]
    policies: dict[str, ScalePolicy] = {
        "full": parse_policy("full"),
        "scalekv": parse_policy("scalekv", budget=budget, profile=profile),
        "hack": parse_policy("hack", budget=budget, profile=profile),
    }
    runs = {name: pipe.generate(labels, num_images=samples, seed=0, kv=policy) for name, policy in policies.items()}
    full = runs["full"]
    out: dict[str, Any] = {"budget": budget, "samples": samples, "what": "bytes of the K/V carried between scales"}
    for name, run in runs.items():
        stats = run.cache
        read = classify_toy_images(torch.from_numpy(run.images))
        out[name] = {
            "context_bytes": stats.max_context_bytes,
            "context_bytes_vs_full": stats.max_context_bytes / full.cache.max_context_bytes,
            "peak_bytes_vs_full": stats.peak_bytes / full.cache.peak_bytes,
            "allocated_bytes_vs_full": stats.allocated_bytes / full.cache.allocated_bytes,
            "psnr_vs_full_db": float(
                np.mean([_psnr_uint8(a, b) for a, b in zip(run.images, full.images, strict=True)])
            ),
            "last_scale_token_agreement": float((run.tokens[-1] == full.tokens[-1]).float().mean()),
            "class_accuracy": float(np.mean([r == t for r, t in zip(read, labels, strict=True)])),
        }
    return out


def tts_accuracy(pipe: Any, prompts: int, candidates: int = 8, guidance_scale: float | None = None) -> dict[str, Any]:
    """var-toy class accuracy of TTS-VAR with `candidates` against best-of-1 (plain sampling) and best-of-N (N
    whole samples, the scorer's pick), prompt i = class i mod C with seed i, and what each costs."""
    from genmotion.image_core.data import classify_toy_images
    from genmotion.image_core.tts import toy_class_scorer, tts_generate

    labels = [i % pipe.num_classes for i in range(prompts)]
    options = {"guidance_scale": guidance_scale}
    runs: dict[str, list[np.ndarray]] = {"best_of_1": [], "tts": [], "best_of_n": []}
    seconds = dict.fromkeys(runs, 0.0)
    rows = tokens = decoded = 0
    for i, label in enumerate(labels):
        t = time.perf_counter()
        runs["best_of_1"].append(pipe.generate(label, seed=i, **options).images[0])
        seconds["best_of_1"] += time.perf_counter() - t
        t = time.perf_counter()
        result = tts_generate(pipe, label, candidates=candidates, seed=i, **options)
        seconds["tts"] += time.perf_counter() - t
        runs["tts"].append(result.image)
        t = time.perf_counter()
        many = pipe.generate(label, num_images=candidates, seed=i, **options).images
        scores = toy_class_scorer(pipe.class_names[label])(torch.from_numpy(many).movedim(-1, 1).float() / 255)
        runs["best_of_n"].append(many[int(scores.argmax())])
        seconds["best_of_n"] += time.perf_counter() - t
        rows, decoded = rows + result.row_scales, decoded + result.decoded
        tokens += sum(r * p * p for r, p in zip(result.schedule, pipe.config.var.patch_nums, strict=True))
    plain_tokens = sum(p * p for p in pipe.config.var.patch_nums) * prompts
    out: dict[str, Any] = {"prompts": prompts, "candidates": candidates, "schedule": list(result.schedule)}
    out["guidance_scale"] = pipe.sampling.guidance_scale if guidance_scale is None else guidance_scale
    for name, images in runs.items():
        read = classify_toy_images(torch.from_numpy(np.stack(images)))
        out[name] = {
            "class_accuracy": float(np.mean([r == t for r, t in zip(read, labels, strict=True)])),
            "seconds_vs_best_of_1": seconds[name] / seconds["best_of_1"],
        }
    out["tts"].update(transformer_tokens_vs_best_of_1=tokens / plain_tokens, decodes_per_prompt=decoded / prompts)
    out["best_of_n"].update(transformer_tokens_vs_best_of_1=float(candidates), decodes_per_prompt=float(candidates))
    out["gain_points"] = 100 * (out["tts"]["class_accuracy"] - out["best_of_1"]["class_accuracy"])
    return out
