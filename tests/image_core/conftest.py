"""image_core tests run single-threaded: their tensors are tiny, and OpenMP barriers on a busy
2-core machine make each small kernel ~50x slower than one thread does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
