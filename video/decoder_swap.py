"""`genmotion convert decoder`: a video checkpoint with another decoder for the same tokens.

A decoder-only fine-tune of a checkpoint's tokenizer (`model.train: decoder`, optionally `model.output_size`
for larger frames) keeps the encoder, its temporal mixing and the codebook, so every token, and so every
transformer trained on them, stays valid. This puts such a decoder into a `videoar` or `ca2vdm` checkpoint (and
into a ca2vdm's first-chunk model), with the decoder's tokenizer config (frame size, input pooling, decoder
widths) replacing the old one. Nothing else changes: the frames come out at the decoder's size.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from genmotion.checkpoint import CARD_NAME
from genmotion.errors import UsageError
from genmotion.registry import resolve
from genmotion.video.streamer import VideoStreamer
from genmotion.video.tokenizer import VideoTokenizer

__all__ = ["convert_decoder", "different_tokens", "with_decoder"]

_TOKEN_PARTS = ("encoder", "encoder_mix", "quantize")  # what decides the tokens
_SKIP = ("ema_vocab_hit",)  # codebook usage statistics: not weights


def different_tokens(a: VideoTokenizer, b: VideoTokenizer) -> list[str]:
    """Names of the token-deciding tensors (encoder, temporal mixing, codebook) that differ between two
    tokenizers, and the config fields that decide tokens; empty when both give every clip the same tokens."""
    ca, cb = a.config, b.config
    fields = ("widths", "latent_channels", "vocab_size", "patch_nums", "quant_resi", "temporal_residual", "deadzone")
    out = [f"config.{f}" for f in fields if getattr(ca, f) != getattr(cb, f)]
    if ca.image_size // ca.input_pool != cb.image_size // cb.input_pool:
        out.append("config.image_size / input_pool (the size the encoder reads)")
    if out:
        return out
    sa, sb = a.state_dict(), b.state_dict()
    names = [k for k in sa if k.split(".")[0] in _TOKEN_PARTS and not any(s in k for s in _SKIP)]
    return [k for k in names if not torch.equal(sa[k], sb[k].to(sa[k]))]


def with_decoder(pipe: VideoStreamer, tuned: VideoTokenizer) -> VideoStreamer:
    """`pipe` (loaded for this; changed in place and returned) with `tuned`'s decoder side and config. The
    first-chunk model of a ca2vdm pipeline gets it too. UsageError when `tuned` codes clips differently."""
    model = pipe.model
    tokenizer = model.tokenizer
    assert isinstance(tokenizer, VideoTokenizer)
    if diff := different_tokens(tokenizer, tuned):
        raise UsageError(
            "the decoder's tokenizer does not give the same tokens as this checkpoint's",
            why=f"these differ: {', '.join(diff[:4])}",
            fix="train the decoder with model.train=decoder and model.init_from=<this checkpoint>",
        )
    new = VideoTokenizer(tuned.config)
    state = {k: v for k, v in tokenizer.state_dict().items() if not k.startswith(("decoder.", "decoder_mix."))}
    state |= {k: v for k, v in tuned.state_dict().items() if k.startswith(("decoder.", "decoder_mix."))}
    new.load_state_dict(state)
    model.tokenizer = new.to(next(tokenizer.parameters()))
    model.config = replace(model.config, tokenizer=tuned.config)
    pipe.config = model.config  # type: ignore[attr-defined]
    first = getattr(pipe, "first_chunk", None)
    if first is not None:
        with_decoder(first, tuned)
    return pipe


def convert_decoder(ckpt: str | Path, decoder: str | Path, out: str | Path, *, force: bool = False) -> Path:
    """Load `ckpt` (a videoar or ca2vdm checkpoint) and the decoder fine-tune `decoder` (a `video-tokenizer`
    checkpoint), swap, save to `out`. The card is the old one below a section naming the decoder and its card."""
    import genmotion
    from genmotion.video.tokenizer_task import load_tokenizer

    pipe = genmotion.load(str(ckpt))
    if not isinstance(pipe, VideoStreamer):
        raise UsageError(f"--ckpt must be a videoar or ca2vdm checkpoint, got kind {pipe.kind!r}")
    tuned = load_tokenizer(str(decoder))
    size = tuned.config.image_size
    with_decoder(pipe, tuned)
    old_card, new_card = (resolve(str(p)) / CARD_NAME for p in (ckpt, decoder))
    card = (
        f"# {pipe.kind} with a new decoder\n\nThe model of `{ckpt}` with the decoder of `{decoder}` (same tokens, "
        f"{size}x{size} frames).\n\n"
        + (new_card.read_text().replace("# video-tokenizer checkpoint", "## Decoder run") if new_card.is_file() else "")
        + ("\n" + old_card.read_text() if old_card.is_file() else "")
    )
    return pipe.save_pretrained(out, card=card, force=force)  # type: ignore[attr-defined, no-any-return]
