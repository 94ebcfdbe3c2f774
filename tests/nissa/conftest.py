"""Fixtures for telemetry tests: run mode (the suite is strict by default) and a clock to step."""

from __future__ import annotations

import pytest

from esper.nissa import STRICT_TELEMETRY_ENV


class FakeClock:
    """Seconds that pass only when a test says so, for the hub's retry backoff."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def run_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lift the suite-wide strict override, so `TelemetryHub(strict=False)` behaves as in a run."""
    monkeypatch.delenv(STRICT_TELEMETRY_ENV)
