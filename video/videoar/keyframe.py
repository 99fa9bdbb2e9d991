"""Keyframe composition: a `videoar` checkpoint whose frame 0 is drawn by a second transformer.

A VideoAR model draws frame 0 from the text alone and every later frame from the frames before it. The two
are different problems (text -> image; image -> next image), and in the toy-world models the first one is
where most of the quality is lost. A keyframe transformer is a VideoAR transformer trained on single-frame
clips with the same tokenizer (`genmotion train configs/video/videoar_keyframe.yaml`); `attach_keyframe`
puts it beside the video model's transformer in one checkpoint (`genmotion convert keyframe`). Sampling then
draws frame 0 with the keyframe transformer and commits it to the video transformer's frame cache, as if
that transformer had drawn it. (`genmotion.video.keyframe.convert_keyframe` composes checkpoints.)
"""

from __future__ import annotations

from dataclasses import replace

import torch

from genmotion.errors import UsageError
from genmotion.video.videoar.model import VideoAR
from genmotion.video.videoar.pipeline import VideoARPipeline

__all__ = ["attach_keyframe"]


def _same_tokenizer(a: VideoAR, b: VideoAR) -> bool:
    if a.config.tokenizer != b.config.tokenizer:
        return False
    sa, sb = a.tokenizer.state_dict(), b.tokenizer.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].float(), sb[k].float()) for k in sa)


def attach_keyframe(video: VideoARPipeline, keyframe: VideoARPipeline) -> VideoARPipeline:
    """`video` with `keyframe`'s transformer drawing frame 0 (a new pipeline; the inputs are not changed).

    Both must share the tokenizer exactly (config and weights): train the keyframe with
    `model.tokenizer_checkpoint=<the video checkpoint>`. A keyframe checkpoint that itself carries a keyframe
    is refused (which transformer would be meant is ambiguous)."""
    if keyframe.model.keyframe is not None:
        raise UsageError(
            "the keyframe checkpoint already has a keyframe transformer",
            fix="pass the single-frame checkpoint that training wrote (its transformer becomes the keyframe)",
        )
    if not _same_tokenizer(video.model, keyframe.model):
        raise UsageError(
            "the keyframe checkpoint has another tokenizer than the video checkpoint",
            why="frame 0's codes must mean what the video transformer reads",
            fix="train the keyframe with --set model.tokenizer_checkpoint=<the video checkpoint>",
        )
    if keyframe.model.config.transformer.text_dim != video.model.config.transformer.text_dim:
        raise UsageError("the keyframe transformer reads another text embedding size than the video transformer")
    model = VideoAR(replace(video.model.config, keyframe=keyframe.model.config.transformer))
    state = {**video.model.state_dict()}
    state.update({f"keyframe.{k}": v for k, v in keyframe.model.transformer.state_dict().items()})
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return VideoARPipeline(model.eval(), sampling=video.default_sampling, fps=video.fps)
