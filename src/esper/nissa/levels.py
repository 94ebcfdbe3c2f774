"""Telemetry levels: how much gets written. Levels never change what training does."""

from __future__ import annotations

from enum import IntEnum


class TelemetryLevel(IntEnum):
    """Ordered verbosity: an event is written when the run's level is at least the event's level."""

    OFF = 0
    MINIMAL = 1
    NORMAL = 2
    DEBUG = 3


# The lowest run level at which each event type is written. MINIMAL is what a long run needs to be
# understood afterwards (what happened to every seed, every episode and PPO update); NORMAL adds
# per-epoch curves and reward terms; DEBUG adds per-slot reports and every action.
EVENT_LEVELS: dict[str, TelemetryLevel] = {
    "run_start": TelemetryLevel.MINIMAL,
    "run_end": TelemetryLevel.MINIMAL,
    "round": TelemetryLevel.MINIMAL,
    "episode": TelemetryLevel.MINIMAL,
    "ppo_update": TelemetryLevel.MINIMAL,
    "lifecycle": TelemetryLevel.MINIMAL,
    "governor": TelemetryLevel.MINIMAL,
    "worker": TelemetryLevel.MINIMAL,
    "epoch": TelemetryLevel.NORMAL,
    "reward": TelemetryLevel.NORMAL,
    "slot_report": TelemetryLevel.DEBUG,
    "action": TelemetryLevel.DEBUG,
}

# An event type missing from EVENT_LEVELS is written from NORMAL up: a newly added event still shows
# up in an ordinary run instead of vanishing, while MINIMAL keeps its promise of a small file.
# It is not an error, because a telemetry omission must never stop training.
DEFAULT_EVENT_LEVEL = TelemetryLevel.NORMAL


def event_level(event_type: str) -> TelemetryLevel:
    """The lowest run level at which events of `event_type` are written."""
    return EVENT_LEVELS.get(event_type, DEFAULT_EVENT_LEVEL)


def is_written(event_type: str, level: TelemetryLevel) -> bool:
    """Whether a run at `level` writes events of `event_type` (never at OFF)."""
    return level != TelemetryLevel.OFF and event_level(event_type) <= level


def parse_level(text: str) -> TelemetryLevel:
    """Parse `off|minimal|normal|debug` (any case).

    Raises:
        ValueError: naming the bad value and the allowed ones.
    """
    try:
        return TelemetryLevel[text.upper()]
    except KeyError:
        allowed = ", ".join(level.name.lower() for level in TelemetryLevel)
        raise ValueError(f"unknown telemetry level {text!r}; expected one of: {allowed}") from None
