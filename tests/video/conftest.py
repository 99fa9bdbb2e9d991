"""Fixtures of the video tests (tiny configs live in video_tiny.py)."""

import pytest
import torch
from video_tiny import tiny_model

from genmotion.video.model import VideoAR


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run many small ops: on a shared 2-core machine a second thread costs 10x in spin-waits."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def model() -> VideoAR:
    return tiny_model()
