"""VideoAR's training objective: teacher-forced next-scale cross-entropy over whole clips, with the two
VideoAR regularisers (cross-frame error correction and random frame masking) and condition dropout for CFG.

Cross-frame error correction: the clean context of every frame is re-quantised from its latent with a
random share (up to `error_correction_rate`) of each scale's codes replaced by random ones; the finer
scales then quantise the residual that error left, as at inference after a wrong draw. Targets stay
the clean codes, so the model learns to repair inherited errors. Axes as in `model.py`; N frames of a batch.

Change weighting (`change_weight` > 1, not in VideoAR): a frame's token whose clean code differs from the
previous frame's code at the same place weighs that much more in the mean cross-entropy. The model sees
the previous frame's codes (`prev_embed`), so copying them is right for most tokens of a slowly changing
clip; on the toy world that made a growing ball stand still. Weighting the changed tokens keeps the loss
from rewarding the copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from genmotion.nn.quantizer import MultiScaleQuantizer
from genmotion.video.residual import nearest_codes, teacher_forcing
from genmotion.video.videoar.layout import clip_attention
from genmotion.video.videoar.model import VideoAR, VideoARTransformer

__all__ = [
    "TrainingSettings",
    "change_weighted_loss",
    "changed_codes",
    "nearest_codes",
    "previous_codes",
    "requantize_with_errors",
    "videoar_loss",
]


@dataclass(frozen=True, kw_only=True)
class TrainingSettings:
    condition_dropout: float = 0.1
    error_correction_rate: float = 0.3
    frame_mask_rate: float = 0.1
    change_weight: float = 1.0
    first_frame_weight: float = 1.0
    self_context_rate: float = 0.0
    self_context_copy: bool = False
    self_context_rounds: int = 1

    def __post_init__(self) -> None:
        if self.change_weight < 1.0:
            raise ValueError(f"change_weight must be >= 1 (1 = plain mean cross-entropy), got {self.change_weight}")
        if self.first_frame_weight <= 0.0:
            raise ValueError(f"first_frame_weight must be > 0 (1 = plain mean), got {self.first_frame_weight}")
        if not 0.0 <= self.self_context_rate <= 1.0:
            raise ValueError(f"self_context_rate must be in [0, 1] (0 = off), got {self.self_context_rate}")
        if self.self_context_rounds < 1:
            raise ValueError(f"self_context_rounds must be >= 1, got {self.self_context_rounds}")


@torch.no_grad()
def requantize_with_errors(
    quantizer: MultiScaleQuantizer, f_NChw: torch.Tensor, rate_N: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Residual quantisation of latents (N, C, h, w) where each code is replaced by a random one with
    probability rate_N[n]; returns (f_hat (N, C, h, w), per-scale indices (N, p^2)). rate 0 = plain VAR."""
    codebook = quantizer.embedding.weight.float()
    f = f_NChw.float()
    N, C, H, W = f.shape
    rest, f_hat, indices = f.clone(), torch.zeros_like(f), []
    for si, pn in enumerate(quantizer.patch_nums):
        down = rest if pn == H else F.interpolate(rest, size=(pn, pn), mode="area")
        idx = nearest_codes(codebook, down.permute(0, 2, 3, 1).reshape(-1, C)).view(N, pn * pn)
        flip = torch.rand(idx.shape, generator=generator) < rate_N[:, None].cpu()
        random = torch.randint(quantizer.vocab_size, idx.shape, generator=generator)
        idx = torch.where(flip.to(idx.device), random.to(idx.device), idx)
        code = codebook[idx].view(N, pn, pn, C).permute(0, 3, 1, 2)
        if pn != H:
            code = F.interpolate(code, size=(H, W), mode="bicubic")
        h = quantizer.phi(si, code.contiguous())
        f_hat, rest = f_hat + h, rest - h
        indices.append(idx)
    return f_hat, indices


def _frame_keep(batch: int, frames: int, rate: float, generator: torch.Generator) -> torch.Tensor:
    """(B, T, T) bool: whether frame f may attend frame g (random frame masking, earlier frames only)."""
    return torch.rand(batch, frames, frames, generator=generator) >= rate


def previous_codes(tr: Any, codes_BTN: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """Frame t's view of frame t-1's (error-corrected) codes at every scale token, (B, T, N_s) long:
    `tr.no_previous` at frame 0 and where random frame masking hides frame t-1 from frame t."""
    B, T = codes_BTN.shape[:2]
    prev = torch.cat([torch.full_like(codes_BTN[:, :1], tr.no_previous), codes_BTN[:, :-1]], dim=1)
    if keep is not None and T > 1:
        hidden = ~keep.diagonal(offset=-1, dim1=1, dim2=2).to(prev.device)  # (B, T - 1): keep[b, t, t - 1]
        prev[:, 1:] = torch.where(hidden[:, :, None], tr.no_previous, prev[:, 1:])
    return prev


def videoar_loss(
    model: VideoAR,
    video_BT3HW: torch.Tensor,
    text_BE: torch.Tensor,
    settings: TrainingSettings,
    generator: torch.Generator,
    transformer: VideoARTransformer | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean cross-entropy of every scale token of every frame (tokens that change from the previous frame
    weighted by `settings.change_weight`); the tokenizer stays frozen (fp32). `transformer`: the one that
    predicts (default `model.transformer`; `model.keyframe` to train the keyframe on one-frame clips)."""
    tr, q = model.transformer if transformer is None else transformer, model.tokenizer.quantize
    layout = tr.layout
    B, T = video_BT3HW.shape[:2]
    tok = model.tokenizer
    with torch.no_grad(), torch.autocast(video_BT3HW.device.type, enabled=False):
        rate = torch.rand(B, generator=generator) * settings.error_correction_rate
        if tok.config.temporal_residual:  # later frames code their change from the (error-injected) frame before
            f_clip = tok.latents(video_BT3HW.float())  # (B, T, Cv, h, w)
            tf = teacher_forcing(
                tok.codebook(), q.patch_nums, f_clip, deadzone=tok.config.deadzone, rate_B=rate, generator=generator
            )
            gt, inputs, context, context_codes = tf.targets, tf.inputs, tf.context, tf.context_codes
        else:
            f = tok.latents(video_BT3HW.float()).flatten(0, 1)  # (B*T, Cv, h, w)
            gt = q.f_to_indices(f)  # K x (B*T, p^2)
            inputs = q.idxBl_to_var_input(gt)  # (B*T, N_s - 1, Cv)
            context, context_codes = requantize_with_errors(q, f, rate.repeat_interleave(T), generator)
    keep = _frame_keep(B, T, settings.frame_mask_rate, generator) if settings.frame_mask_rate > 0 else None
    keep_text = torch.rand(B, generator=generator) >= settings.condition_dropout
    cond = tr.condition(text_BE, keep_text.to(text_BE.device))  # (B, W)
    inputs_BT = inputs.view(B, T, *inputs.shape[1:])  # (B, T, N_s - 1, Cv)
    target = torch.cat(gt, dim=1).view(B, T, layout.scale_tokens)
    changed = changed_codes(target)
    if settings.self_context_rate > 0 and T > 1:
        own = (torch.rand(B, generator=generator) < settings.self_context_rate).to(context.device)
        if bool(own.any()):
            for _ in range(settings.self_context_rounds):  # each round drawn given the last: deeper inherited errors
                context, context_codes = _own_context(
                    tr, q, cond, inputs_BT, context, context_codes, keep, own, generator
                )
            if settings.self_context_copy:
                target = _copy_unchanged(target, changed, torch.cat(list(context_codes), dim=1).view(B, T, -1), own)
    logits = _clip_logits(tr, cond, inputs_BT, context, context_codes, keep)  # (B, T * N_s, V)
    loss = change_weighted_loss(
        logits, target, settings.change_weight, first_frame_weight=settings.first_frame_weight, changed_BTN=changed
    )[0]
    target = target.view(B, T * layout.scale_tokens)
    with torch.no_grad():
        correct = (logits.argmax(-1) == target).view(B, T, -1)
        last = layout.scale_slice(layout.num_scales - 1)
        logs = {
            "token_accuracy": float(correct.float().mean()),
            "last_scale_accuracy": float(correct[..., last].float().mean()),
            "changed_fraction": float(changed[:, 1:].float().mean()) if T > 1 else 0.0,
        }
        if bool(changed.any()):
            logs["changed_token_accuracy"] = float(correct[changed].float().mean())
    return loss, logs


def _clip_logits(
    tr: Any,
    cond: torch.Tensor,
    inputs_BT: torch.Tensor,
    context: torch.Tensor,
    context_codes: Sequence[torch.Tensor],
    keep: torch.Tensor | None,
) -> torch.Tensor:
    """Teacher-forced logits (B, T * N_s, V) of every scale token of a clip from its scale inputs
    (B, T, N_s - 1, Cv), the finished frames' context latents (B*T, Cv, h, w) and their codes (K x (B*T, p^2))."""
    layout, cfg = tr.layout, tr.config
    B, T = inputs_BT.shape[:2]
    context_BTlC = context.flatten(2).transpose(1, 2).reshape(B, T, -1, context.shape[1])
    prev = previous_codes(tr, torch.cat(list(context_codes), dim=1).view(B, T, -1), keep)  # (B, T, N_s)
    scales = tr.embed_scales(cond, inputs_BT, prev)  # (B, T, N_s, W)
    clean = tr.embed_clean(context_BTlC)  # (B, T, N_c, W)
    x = torch.cat([scales, clean], dim=2).flatten(1, 2)  # (B, T * N, W)
    clip = clip_attention(layout, T, sink=cfg.sink_frames, window=cfg.window_frames, keep_frames=keep)
    pos = layout.clip_positions(T).to(x.device)
    h = tr(x, cond, pos, clip.to(x.device)).view(B, T, layout.tokens_per_frame, -1)[:, :, : layout.scale_tokens]
    return tr.logits(h.flatten(1, 2), cond).float()


@torch.no_grad()
def _own_context(
    tr: VideoARTransformer,
    q: MultiScaleQuantizer,
    cond: torch.Tensor,
    inputs_BT: torch.Tensor,
    context: torch.Tensor,
    context_codes: Sequence[torch.Tensor],
    keep: torch.Tensor | None,
    own_B: torch.Tensor,
    generator: torch.Generator,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Self context (not in VideoAR; parallel scheduled sampling): for the clips where own_B (B,) bool, every
    frame's context becomes the model's own draw of that frame (each scale sampled at temperature 1 from a
    teacher-forced pass) instead of its clean coding, so training meets the frames inference conditions on
    and learns to pull the next frame back to the toy world's. Called again on its own output
    (`self_context_rounds`), each frame's draw reads frames that were themselves drawn, as at inference.
    Returns (context (B*T, Cv, h, w), codes)."""
    B, T = inputs_BT.shape[:2]
    logits = _clip_logits(tr, cond, inputs_BT, context, context_codes, keep)  # (B, T * N_s, V)
    probs = logits.softmax(-1).flatten(0, 1)
    drawn = torch.multinomial(probs.cpu(), 1, generator=generator).view(B * T, -1).to(logits.device)  # (B*T, N_s)
    sizes = [pn * pn for pn in q.patch_nums]
    codes = list(drawn.split(sizes, dim=1))
    fhat = q.indices_to_fhat(codes).to(context.dtype)  # (B*T, Cv, h, w)
    mine = own_B.repeat_interleave(T)  # (B*T,)
    mixed_context = torch.where(mine[:, None, None, None], fhat, context)
    mixed_codes = [torch.where(mine[:, None], c, old) for c, old in zip(codes, context_codes, strict=True)]
    return mixed_context, mixed_codes


def changed_codes(codes_BTN: torch.Tensor) -> torch.Tensor:
    """(B, T, N_s) bool: where a frame's code differs from the previous frame's at the same place (frame 0:
    False)."""
    changed = torch.zeros_like(codes_BTN, dtype=torch.bool)
    changed[:, 1:] = codes_BTN[:, 1:] != codes_BTN[:, :-1]
    return changed


def _copy_unchanged(
    target_BTN: torch.Tensor, changed_BTN: torch.Tensor, own_BTN: torch.Tensor, own_B: torch.Tensor
) -> torch.Tensor:
    """Self-context copy targets: in the clips where own_B (B,), a token the toy world leaves unchanged from
    frame t-1 to t (not changed_BTN) targets the model's own code of frame t-1 there (own_BTN), not the clean
    one, so a background drawn slightly wrong is kept steady rather than pulled back to the clean frame."""
    copy = own_B[:, None, None] & ~changed_BTN
    copy[:, 0] = False
    previous = torch.cat([own_BTN[:, :1], own_BTN[:, :-1]], dim=1)
    return torch.where(copy, previous, target_BTN)


def change_weighted_loss(
    logits_BLV: torch.Tensor,
    target_BTN: torch.Tensor,
    change_weight: float,
    *,
    first_frame_weight: float = 1.0,
    changed_BTN: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of logits (B, T * N_s, V) against codes (B, T, N_s), averaged with weight
    `change_weight` on tokens whose code differs from the previous frame's at the same place (or where
    `changed_BTN`, when given), weight `first_frame_weight` on frame 0's tokens (no previous frame; the one
    frame drawn from text alone) and 1 on the rest. Returns (loss, changed (B, T, N_s) bool)."""
    changed = changed_codes(target_BTN) if changed_BTN is None else changed_BTN
    if change_weight == 1.0 and first_frame_weight == 1.0:
        return F.cross_entropy(logits_BLV.flatten(0, 1), target_BTN.flatten()), changed
    ce = F.cross_entropy(logits_BLV.flatten(0, 1), target_BTN.flatten(), reduction="none")
    weight = 1.0 + (change_weight - 1.0) * changed.to(ce.dtype)  # (B, T, N_s)
    weight[:, 0] = first_frame_weight
    weight = weight.flatten()
    return (ce * weight).sum() / weight.sum(), changed


def clip_condition_texts(captions: Sequence[str], encoder: Any) -> torch.Tensor:
    """Pooled prompt embeddings (B, E) of captions through a `PromptEncoder`."""
    return encoder.encode(list(captions)).pooled.float()
