"""Keyframe composition for the causal flow model: a `ca2vdm` checkpoint whose first chunk is denoised by a
second flow transformer.

As in VideoAR (`genmotion.video.videoar.keyframe`), the first chunk is drawn from the text alone and every
later one from the clean frames before it, and on the toy world the first is where the quality is lost: given
a ground-truth first chunk, ca2vdm-toy's free-running FVD falls by two thirds. A keyframe is the flow
transformer fine-tuned on one-chunk clips (`genmotion train configs/video/ca2vdm_toy.yaml --set
data.num_frames=2 ...`: no context, text only) with the same autoencoder; `attach_keyframe` puts it beside
the video transformer (`genmotion convert keyframe`). Sampling then denoises chunk 0 with the keyframe and
commits it to the video transformer's cache, as if that transformer had drawn it. The two share the
architecture, so they share the cache layout.
"""

from __future__ import annotations

from dataclasses import replace

from genmotion.errors import UsageError
from genmotion.video.ca2vdm.model import Ca2VDM
from genmotion.video.ca2vdm.pipeline import Ca2VDMPipeline

__all__ = ["attach_keyframe"]

FLOW_PARTS = ("tokenizer.", "latent_mean", "latent_std", "keyframe.")  # what is not the flow transformer's


def attach_keyframe(video: Ca2VDMPipeline, keyframe: Ca2VDMPipeline) -> Ca2VDMPipeline:
    """`video` with `keyframe`'s flow transformer denoising the first chunk (a new pipeline; the inputs are not
    changed). Both must share the autoencoder exactly and the flow transformer's architecture."""
    if keyframe.model.keyframe is not None:
        raise UsageError(
            "the keyframe checkpoint already has a keyframe transformer",
            fix="pass the one-chunk checkpoint that training wrote (its flow transformer becomes the keyframe)",
        )
    a, b = video.model, keyframe.model
    same = a.config.tokenizer == b.config.tokenizer and all(
        (x.float() == y.float()).all()
        for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True)
        if k.startswith(FLOW_PARTS[:3])
    )
    if not same:
        raise UsageError(
            "the keyframe checkpoint has another autoencoder than the video checkpoint",
            why="the first chunk's latents must mean what the video transformer reads",
            fix="train the keyframe with --set model.init_from=<the video checkpoint>",
        )
    if b.config.flow != a.config.flow:
        raise UsageError(
            "the keyframe's flow transformer has another architecture than the video checkpoint's",
            why="the first chunk is committed to the video transformer's cache, which has its layout",
            fix="fine-tune the keyframe from the video checkpoint (model.init_from), leaving model.flow as it is",
        )
    model = Ca2VDM(replace(a.config, keyframe=b.config.flow))
    state = {**a.state_dict()}
    state.update({f"keyframe.{k}": v for k, v in b.state_dict().items() if not k.startswith(FLOW_PARTS)})
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return Ca2VDMPipeline(model.eval(), fps=video.fps, head_profile=video.head_profile)
