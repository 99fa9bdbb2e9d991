"""Every test runs single-threaded: the tensors are small, and on a busy 2-core machine an OpenMP thread that
waits for a preempted sibling makes each small kernel many times slower than one thread does (restored after)."""

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that run a benchmark (quick mode) carry the `bench` mark: `pytest -m "not bench"` skips them."""
    for item in items:
        if "bench" in item.name or "bench" in item.path.name:
            item.add_marker(pytest.mark.bench)
