"""genmotion.io: streaming, atomic video output (MP4/GIF/PNG), video input (decord or PyAV), atomic files.

Importing it loads numpy only; PyAV and Pillow are imported when a video is written or read.
"""

from genmotion.io.atomic import atomic_path, partial_path_for, write_bytes, write_text
from genmotion.io.image_writers import GifWriter, PngSequenceWriter
from genmotion.io.mp4 import Mp4Writer
from genmotion.io.reader import VideoInfo, iter_frames, probe, read_video
from genmotion.io.video_out import open_video_writer, video_format
from genmotion.io.writer import VideoWriter

__all__ = [
    "GifWriter",
    "Mp4Writer",
    "PngSequenceWriter",
    "VideoInfo",
    "VideoWriter",
    "atomic_path",
    "iter_frames",
    "open_video_writer",
    "partial_path_for",
    "probe",
    "read_video",
    "video_format",
    "write_bytes",
    "write_text",
]
