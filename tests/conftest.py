"""Suite-wide settings.

`ESPER_TEST_THREADS` (default 1) is the torch thread count every test starts with: the suite must
hold at 1 and at 2 threads (`make test-threads`), since a different count changes the order of
floating-point reductions and therefore training trajectories.
"""

from __future__ import annotations

import os

import pytest
import torch

TEST_THREADS = int(os.environ.get("ESPER_TEST_THREADS", "1"))


@pytest.fixture(autouse=True)
def torch_threads() -> int:
    """Every test starts at `ESPER_TEST_THREADS` torch threads (a test may change it)."""
    torch.set_num_threads(TEST_THREADS)
    return TEST_THREADS
