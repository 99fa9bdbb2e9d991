"""`genmotion convert keyframe` for both video models: a checkpoint whose start is drawn by a VideoAR model.

A videoar video takes the keyframe checkpoint's transformer for frame 0 (`videoar.keyframe.attach_keyframe`);
a ca2vdm video takes the whole videoar checkpoint as its first-chunk model (`Ca2VDMPipeline.with_first_chunk`).
"""

from __future__ import annotations

from pathlib import Path

from genmotion.errors import UsageError
from genmotion.video.ca2vdm.pipeline import Ca2VDMPipeline
from genmotion.video.videoar.keyframe import attach_keyframe
from genmotion.video.videoar.pipeline import VideoARPipeline

__all__ = ["convert_keyframe"]


def convert_keyframe(video: str | Path, keyframe: str | Path, out: str | Path, *, force: bool = False) -> Path:
    """`genmotion convert keyframe`: load both checkpoints (registry names or directories), attach, save. A
    videoar `video` takes the keyframe's transformer for frame 0; a ca2vdm `video` takes the whole videoar
    `keyframe` checkpoint as its first-chunk model (`Ca2VDMPipeline.with_first_chunk`)."""
    import genmotion

    made: VideoARPipeline | Ca2VDMPipeline
    base, key = (genmotion.load(str(p)) for p in (video, keyframe))
    if not isinstance(key, VideoARPipeline):
        raise UsageError(f"--keyframe must be a videoar checkpoint, got kind {key.kind!r}")
    if isinstance(base, Ca2VDMPipeline):
        made, what = base.with_first_chunk(key), f"the first chunk ({base.frame_layout.frames_per_chunk} frames)"
    elif isinstance(base, VideoARPipeline):
        made, what = attach_keyframe(base, key), "frame 0"
    else:
        raise UsageError(f"--video must be a videoar or ca2vdm checkpoint, got kind {base.kind!r}")
    card = (
        f"# {base.kind} with a keyframe model\n\nThe model of `{video}`; {what} drawn by `{keyframe}` (a VideoAR "
        "model with the same frame size).\n"
    )
    return made.save_pretrained(out, card=card, force=force)
