"""Fixtures for telemetry tests: run mode (the suite is strict by default) and a clock to step."""

from __future__ import annotations

import pytest
from fake_clock import FakeClock

from esper.nissa import STRICT_TELEMETRY_ENV


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def run_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lift the suite-wide strict override, so `TelemetryHub(strict=False)` behaves as in a run."""
    monkeypatch.delenv(STRICT_TELEMETRY_ENV)
