"""A clock for telemetry tests: seconds pass only when a test says so."""

from __future__ import annotations


class FakeClock:
    """Seconds that pass only when a test says so, for the hub's retry backoff."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
