"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def single_thread() -> Iterator[None]:
    """Run torch on one thread for the test, then restore the previous count.

    Small tensor ops on a shared, loaded machine are 1000x slower with intra-op threads
    contending for cores (e.g. a tiny float64 conv2d: 16 ms on 2 threads, 7 us on 1).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
