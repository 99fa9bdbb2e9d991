"""Where a video model's incoherence comes from, each part measured with the same yardstick (`video.fvd`):
the tokenizer/autoencoder alone (ground truth encoded and decoded), teacher-forced next-frame prediction (each
frame made from ground-truth context) against free running, the first frame (from text only) against later
frames, and sampling settings. Works on a `VideoARPipeline` and a `Ca2VDMPipeline` through their public parts.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from genmotion.pipeline import FlowPolicyHost, to_uint8
from genmotion.video.fvd import Yardstick, frozen

__all__ = ["context_rows", "diagnose", "generate_set", "reconstruct", "teacher_forced", "teacher_forced_codes"]


def _is_flow(pipe: Any) -> bool:
    return isinstance(pipe, FlowPolicyHost)


def _as_unit(clips_NTHW3: np.ndarray, pipe: Any) -> torch.Tensor:
    """uint8 (N, T, H, W, 3) -> (N, T, 3, H, W) in [-1, 1] on the pipeline's device and dtype."""
    x = torch.as_tensor(np.ascontiguousarray(clips_NTHW3)).permute(0, 1, 4, 2, 3).float().div(127.5).sub(1)
    return x.to(pipe.device, pipe.dtype)


def generate_set(pipe: Any, prompts: Sequence[str], *, num_frames: int, seed: int = 0, **sampling: Any) -> np.ndarray:
    """One clip per prompt (seed `seed` each) -> uint8 (N, T, H, W, 3)."""
    return np.stack([pipe.generate(p, num_frames=num_frames, seed=seed, **sampling).frames for p in prompts])


@torch.no_grad()
def reconstruct(pipe: Any, clips: np.ndarray) -> np.ndarray:
    """Ground-truth clips through the model's tokenizer (VideoAR: quantised codes) or autoencoder (Ca2-VDM:
    continuous latents) and back, decoded causally as the pipeline decodes. -> uint8 like `clips`."""
    out = []
    for clip in clips:
        x = _as_unit(clip[None], pipe)
        if _is_flow(pipe):
            frames = pipe.model.decode_tokens(pipe.model.encode_tokens(x))
        else:
            frames = pipe.model.tokenizer.decode_indices(pipe.model.tokenizer.encode(x))
        out.append(to_uint8(frames[0]))
    return np.stack(out)


@torch.no_grad()
def teacher_forced_codes(
    pipe: Any, prompt: str, indices: Sequence[torch.Tensor], seed: int, **sampling: Any
) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
    """VideoAR: frame t sampled with the given codes of frames < t (per scale (1, T, l)) in the cache, as the
    previous frame's codes and as the decoder's previous latent; the given frame, not the sample, is committed
    before frame t + 1. -> frames (T, 3, H, W) in [-1, 1] and each frame's sampled codes per scale (1, l)."""
    from genmotion.video.videoar.sampler import _commit, _sample_frame

    model, tok = pipe.model, pipe.model.tokenizer
    tr = model.transformer
    settings = pipe.sampling_settings(**sampling)  # the checkpoint's recommendation where `sampling` is silent
    guided = settings.guided
    truth = tok.indices_to_fhat(indices)[0].to(pipe.dtype)  # (T, Cv, h, w)
    temporal = tok.config.temporal_residual
    cond = pipe.condition(prompt)
    rows = torch.cat([cond, tr.null_condition(1).to(cond.dtype)]) if guided else cond
    cache = tr.new_cache(rows.shape[0], dtype=pipe.dtype, device=pipe.device)
    generator, frames, codes = torch.Generator().manual_seed(seed), [], []
    for t in range(indices[0].shape[1]):
        prev = None if t == 0 else [i[:, t - 1] for i in indices]
        base = truth[t - 1 : t] if temporal and t > 0 else None
        fhat, tokens = _sample_frame(model, t, rows, prev, base, copy.deepcopy(cache), settings, generator, ())
        frames.append(tok.decode_frame(fhat.to(pipe.dtype), None if t == 0 else truth[t - 1 : t]))
        codes.append(tokens)
        _commit(model, t, truth[t : t + 1], tr.modulation(rows), cache, guided)
    return torch.cat(frames), codes


def _teacher_forced_videoar(pipe: Any, prompt: str, clip: np.ndarray, seed: int, **sampling: Any) -> np.ndarray:
    """Frame 0 is the tokenizer's reconstruction (nothing comes before it); frames 1... are predictions."""
    tok = pipe.model.tokenizer
    indices = tok.encode(_as_unit(clip[None], pipe))  # per scale (1, T, l)
    frames = teacher_forced_codes(pipe, prompt, indices, seed, **sampling)[0]
    first = tok.indices_to_fhat([i[:, :1] for i in indices])[:, 0].to(pipe.dtype)  # (1, Cv, h, w)
    frames[0] = tok.decode_frame(first, None)[0]
    return to_uint8(frames)


@torch.no_grad()
def _teacher_forced_flow(pipe: Any, prompt: str, clip: np.ndarray, seed: int, **sampling: Any) -> np.ndarray:
    """Each chunk after the first denoised after the ground-truth frames before it (a clean prefix), decoded
    after the true previous latent; the first chunk is the autoencoder's reconstruction."""
    from genmotion.engine.flow import FlowLoopConfig, flow_generate

    model = pipe.model
    tokens = model.encode_tokens(_as_unit(clip[None], pipe))  # (1, T, N, D)
    flow = pipe.conditioned_flow(prompt, sampling.get("guidance_scale", 3.0))
    step, generator, frames = pipe.frame_layout.frames_per_chunk, torch.Generator().manual_seed(seed), []
    for start in range(0, clip.shape[0], step):
        count = min(step, clip.shape[0] - start)
        if start == 0:
            frames.append(model.decode_tokens(tokens[:, :count])[0])
            continue
        config = FlowLoopConfig(num_frames=count, num_steps=sampling.get("num_steps", 10))
        made = flow_generate(
            flow,
            pipe.policy("shared"),
            pipe.frame_layout,
            config,
            generator=generator,
            prefix_BFNC=tokens[:, :start],
            device=pipe.device,
            dtype=pipe.dtype,
        )
        prev = model.tokens_to_latents(tokens[:, start - 1 : start])[:, 0]
        frames.append(model.decode_tokens(made, prev)[0])
    return to_uint8(torch.cat(frames))


def teacher_forced(
    pipe: Any, prompts: Sequence[str], clips: np.ndarray, *, seed: int = 0, **sampling: Any
) -> np.ndarray:
    """Next-frame (VideoAR) or next-chunk (Ca2-VDM) predictions from ground-truth context, one clip per prompt;
    what has no context (frame 0, the first chunk) is the ground truth reconstructed, so every change in the
    clip is a prediction's."""
    run = _teacher_forced_flow if _is_flow(pipe) else _teacher_forced_videoar
    return np.stack([run(pipe, p, c, seed, **sampling) for p, c in zip(prompts, clips, strict=True)])


def sampling_variants(pipe: Any) -> dict[str, dict[str, Any]]:
    """The sampling settings the diagnosis sweeps (the checkpoint's recommendation is the free-running row; a
    guidance scale given alone guides every frame, frame 0 too)."""
    if _is_flow(pipe):
        return {"guidance 1": {"guidance_scale": 1.0}, "guidance 6": {"guidance_scale": 6.0},
                "steps 24": {"num_steps": 24}}  # fmt: skip
    return {"guidance 1": {"guidance_scale": 1.0}, "guidance 3": {"guidance_scale": 3.0},
            "guidance 6": {"guidance_scale": 6.0}, "temperature 0.5": {"temperature": 0.5},
            "top-k 4": {"top_k": 4}}  # fmt: skip


def _frozen_frame(yardstick: Yardstick, free: np.ndarray, t: int) -> dict[str, float]:
    """Frame t held still, generated and ground truth (floor), each against the reference's frame t held still:
    the FVD of one frame's appearance alone, without motion; plus the pieces and sharpness of that frame."""
    from genmotion.video.quality import frechet_distance, object_mask, pieces, sharpness

    n = len(free)
    ref = yardstick.features(frozen(yardstick.reference[:n], t))
    out = {}
    for name, clips in (("generated", free), ("ground_truth", yardstick.floor_clips[:n])):
        masks = [object_mask(c[t : t + 1], colour)[0] for c, colour in zip(clips, yardstick.colours, strict=False)]
        out[f"fvd_{name}"] = frechet_distance(yardstick.features(frozen(clips, t)), ref)
        out[f"pieces_{name}"] = float(np.mean([pieces(m) for m in masks]))
        out[f"sharpness_{name}"] = float(np.mean([sharpness(c[t : t + 1]) for c in clips]))
    return out


def context_rows(pipe: Any, yardstick: Yardstick, count: int) -> dict[str, dict[str, float]]:
    """The tokenizer alone and teacher-forced prediction, both made from the floor's ground truth (seed 2), so
    that, like the floor, they are scored against a reference they share nothing with but the prompts."""
    prompts, truth = yardstick.prompts[:count], yardstick.floor_clips[:count]
    return {
        "tokenizer_reconstruction": yardstick.score(reconstruct(pipe, truth)),
        "teacher_forced": yardstick.score(teacher_forced(pipe, prompts, truth)),
    }


def diagnose(pipe: Any, yardstick: Yardstick, free: np.ndarray, count: int, *, sweep: bool = True) -> dict[str, Any]:
    """Every diagnosis row on the first `count` prompts of the yardstick, with the ground-truth floor beside it.

    `free`: the free-running clips already made for those prompts (seed 0, the checkpoint's sampling)."""
    prompts, frames = yardstick.prompts[:count], free.shape[1]
    rows: dict[str, Any] = {
        "clips": count,
        "ground_truth_floor": yardstick.score(yardstick.floor_clips[:count]),
        "free_running": yardstick.score(free[:count]),
        **context_rows(pipe, yardstick, count),
    }
    rows["frames"] = {t: _frozen_frame(yardstick, free[:count], t) for t in sorted({0, 1, frames // 2, frames - 1})}
    if sweep:
        rows["sampling"] = {
            name: yardstick.score(generate_set(pipe, prompts, num_frames=frames, **kw))
            for name, kw in sampling_variants(pipe).items()
        }
    return rows
