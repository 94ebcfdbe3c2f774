"""Suite-wide settings.

`ESPER_TEST_THREADS` (default 1) is the torch thread count every test starts with: the suite must
hold at 1 and at 2 threads (`make test-threads`), since a different count changes the order of
floating-point reductions and therefore training trajectories.

`ESPER_TELEMETRY_STRICT=1` is set for every test, so that telemetry fails loudly here.
"""

from __future__ import annotations

import os

import pytest
import torch

from esper.nissa import STRICT_TELEMETRY_ENV

TEST_THREADS = int(os.environ.get("ESPER_TEST_THREADS", "1"))


@pytest.fixture(autouse=True)
def torch_threads() -> int:
    """Every test starts at `ESPER_TEST_THREADS` torch threads (a test may change it)."""
    torch.set_num_threads(TEST_THREADS)
    return TEST_THREADS


@pytest.fixture(autouse=True)
def strict_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every telemetry hub is strict, even one a run command opens in run mode (`strict=False`):
    a bad payload or a sink bug must fail the test where a real run would only log and drop."""
    monkeypatch.setenv(STRICT_TELEMETRY_ENV, "1")
