"""Prompt-sized forwards (a few tokens) gain nothing from a second thread, and when other jobs share the
two cores an OpenMP thread that waits for a preempted sibling makes each forward ~20x slower; the text
tests therefore run single-threaded (restored afterwards)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
