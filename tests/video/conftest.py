"""Fixtures of the video tests (tiny configs live in video_tiny.py)."""

import pytest
from video_tiny import tiny_model

from genmotion.video.videoar.model import VideoAR


@pytest.fixture
def model() -> VideoAR:
    return tiny_model()
