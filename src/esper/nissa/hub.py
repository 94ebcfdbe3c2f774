"""The telemetry hub: filters events by level, serializes each once, and fans them out to sinks.

It also decides what a telemetry failure does. A bad payload (`TelemetryError`) or a sink bug
raises in strict mode (tests, library code) and, in a run (`strict=False`), costs only that event
or that sink, counted and reported once. An I/O error (`OSError`) never raises: the sink misses
events for a while and is retried with a growing backoff, so a full disk or a replaced
events.jsonl heals without one log line per event.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from esper.leyline.events import (
    Event,
    EventContext,
    SinkHealth,
    SinkStatus,
    TelemetryError,
    TelemetryHealth,
)
from esper.nissa.levels import TelemetryLevel, is_written
from esper.nissa.sinks import Sink

# Failures are reported through logging rather than `warnings.warn`: nothing the caller can
# change in their code fixes a full disk, and `-W error` (or pytest's `filterwarnings = error`)
# would turn a warning into an exception: what a telemetry failure in a run must never become.
logger = logging.getLogger(__name__)

# "1" makes every hub strict, whatever its constructor says: the test suite sets it, so that the
# CLI's hubs (run mode) fail the end-to-end tests on a bad payload instead of dropping it.
STRICT_TELEMETRY_ENV = "ESPER_TELEMETRY_STRICT"

# A failing sink is retried RETRY_FIRST_S after its first failure, then twice as long after each
# failed attempt, up to RETRY_MAX_S: a blip heals within a second, while a disk that stays full
# costs one failed write a minute. The delay is not reset on recovery, so a sink that keeps
# flapping is tried (and reported) less and less often.
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0

UNSERIALIZABLE = "unserializable"  # the reason counted for an event with no JSON form


@dataclass
class _SinkState:
    """The hub's record of one sink: whether it gets events now, and what it has missed."""

    sink: Sink
    status: SinkStatus = SinkStatus.OK
    failures: int = 0
    dropped: int = 0
    dropped_in_outage: int = 0  # missed since the current failure began, for the recovery line
    retry_at: float = 0.0  # clock time of the next attempt while RETRYING
    last_error: str | None = None

    def health(self) -> SinkHealth:
        return SinkHealth(
            repr(self.sink), self.status, self.failures, self.dropped, self.last_error
        )

    def miss(self) -> None:
        self.dropped += 1
        self.dropped_in_outage += 1


class TelemetryHub:
    """Sends each event the run's level allows to every sink that is working.

    Args:
        sinks: where events go (e.g. a `JsonlSink` for events.jsonl, a `MemorySink`).
        level: events of types whose level is above this one are not written (see
            `EVENT_LEVELS`); that is a choice, not a loss, so it is not counted.
        strict: raise a bad payload (`TelemetryError`, naming the field) and any sink error
            other than `OSError`. `False` is for runs: such an event is dropped, and such a sink
            disabled, each counted in `health()` and logged once. `ESPER_TELEMETRY_STRICT=1`
            makes every hub strict.
        clock: seconds, for the retry backoff of failing sinks (tests pass a fake one).

    Raises:
        ValueError: `ESPER_TELEMETRY_STRICT` set to something other than 0 or 1.
    """

    def __init__(
        self,
        sinks: Iterable[Sink],
        level: TelemetryLevel = TelemetryLevel.NORMAL,
        *,
        strict: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.level = level
        is_forced = _is_strict_forced()  # read even when strict, so a bad value always shows
        self.is_strict = strict or is_forced
        self._states = [_SinkState(sink) for sink in sinks]
        self._dropped: dict[str, Counter[str]] = {}  # reason -> event type -> count
        self._clock = clock
        self._is_closed = False

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """The sinks receiving events now (not those failing or disabled)."""
        return tuple(state.sink for state in self._states if state.status is SinkStatus.OK)

    def health(self) -> TelemetryHealth:
        """What has been lost so far (also after `close`): a snapshot, for `RunEndEvent`."""
        return TelemetryHealth(
            dropped={reason: dict(counts) for reason, counts in self._dropped.items()},
            sinks=tuple(state.health() for state in self._states),
        )

    def emit(self, event: Event) -> None:
        """Write `event` to every working sink, unless its type needs a more verbose level.

        Raises:
            TelemetryError: in strict mode, for a payload value with no JSON form.
        """
        self._check_open(event.type)
        if not is_written(event.type, self.level):
            return
        try:
            event.to_json()  # kept on the event: the JSONL sink writes this very string
        except TelemetryError as error:
            self._drop(event.type, error)
            return
        for state in self._states:
            self._write(state, event)

    def emit_payload(self, payload: Any, context: EventContext, epoch: int) -> None:
        """Wrap a payload record (a dataclass with a `TYPE` tag) in an `Event` and emit it.

        The level is checked first, so a payload that will not be written is never serialized.

        Raises:
            TelemetryError: in strict mode, for a payload value with no JSON form.
        """
        self._check_open(payload.TYPE)
        if not is_written(payload.TYPE, self.level):
            return
        try:
            event = Event.wrap(payload, context, epoch)
        except TelemetryError as error:
            self._drop(payload.TYPE, error)
            return
        self.emit(event)

    def emit_records(self, payloads: Iterable[Any], context: EventContext, epoch: int) -> None:
        """`emit_payload` for each of several payloads (one env step's records) in order."""
        for payload in payloads:
            self.emit_payload(payload, context, epoch)

    def commit(self) -> None:
        """Make every sink that holds events back (a transactional `JsonlSink`) write and sync
        them. A failed commit is an I/O failure like a failed write: its events are counted as
        missed and the sink is retried later; it never raises, in strict mode neither.
        """
        if self._is_closed:
            raise RuntimeError("telemetry commit after the hub was closed")
        for state in self._states:
            commit = getattr(state.sink, "commit", None)
            if commit is None or state.status is SinkStatus.DISABLED:
                continue
            pending = int(getattr(state.sink, "pending", 0))
            try:
                commit()
            except OSError as error:
                state.dropped += pending
                state.dropped_in_outage += pending
                self._on_io_error(state, error)
            except Exception as error:
                if self.is_strict:
                    raise
                state.dropped += pending
                self._disable(state, error, "commit")

    def close(self) -> None:
        """Close every sink not disabled, then report what each missed in this run.

        A sink failing to close is reported like a failed write; in strict mode a sink bug is
        raised once all the others are closed.
        """
        if self._is_closed:
            return
        self._is_closed = True
        bug: Exception | None = None
        for state in self._states:
            if state.status is SinkStatus.DISABLED:
                continue  # closed when it was disabled
            try:
                state.sink.close()
            except OSError as error:
                self._record_failure(state, error)
                logger.error("telemetry sink %r failed to close: %s", state.sink, state.last_error)
            except Exception as error:
                if self.is_strict:
                    bug = bug or error
                else:
                    self._disable(state, error, "close")
        self._report_losses()
        if bug is not None:
            raise bug

    def __enter__(self) -> TelemetryHub:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self, event_type: str) -> None:
        if self._is_closed:
            raise RuntimeError(f"telemetry event {event_type!r} emitted after the hub was closed")

    def _drop(self, event_type: str, error: TelemetryError) -> None:
        """An event no sink will get: raise it (strict) or count it, logging once per type."""
        if self.is_strict:
            raise error
        counts = self._dropped.setdefault(UNSERIALIZABLE, Counter())
        counts[event_type] += 1
        if counts[event_type] == 1:
            logger.error(
                "telemetry event %r dropped (later ones with this problem are only counted): %s",
                event_type,
                error,
            )

    def _write(self, state: _SinkState, event: Event) -> None:
        if not self._is_due(state):
            state.miss()
            return
        try:
            state.sink.write(event)
        except OSError as error:
            state.miss()
            self._on_io_error(state, error)
        except Exception as error:
            if self.is_strict:
                raise
            state.miss()
            self._disable(state, error, "write")
            # Release what the broken sink holds (an open file); its failure is reported already.
            with contextlib.suppress(Exception):
                state.sink.close()
        else:
            if state.status is SinkStatus.RETRYING:
                self._on_recovered(state)

    def _is_due(self, state: _SinkState) -> bool:
        if state.status is SinkStatus.RETRYING:
            return self._clock() >= state.retry_at
        return state.status is SinkStatus.OK

    def _on_io_error(self, state: _SinkState, error: OSError) -> None:
        """Schedule the next attempt; report the failure only when it begins."""
        self._record_failure(state, error)
        delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (state.failures - 1))
        state.retry_at = self._clock() + delay
        if state.status is SinkStatus.OK:
            state.status = SinkStatus.RETRYING
            logger.error(
                "telemetry sink %r failed to write (%s); training continues, its events are "
                "dropped and it is retried at growing intervals of up to %.0f s",
                state.sink,
                state.last_error,
                RETRY_MAX_S,
            )

    def _on_recovered(self, state: _SinkState) -> None:
        logger.warning(
            "telemetry sink %r recovered; it missed %d events while failing",
            state.sink,
            state.dropped_in_outage,
        )
        state.status = SinkStatus.OK
        state.dropped_in_outage = 0

    def _disable(self, state: _SinkState, error: Exception, operation: str) -> None:
        """A sink bug in a run: stop using the sink for good, with the traceback logged once."""
        self._record_failure(state, error)
        state.status = SinkStatus.DISABLED
        logger.error(
            "telemetry sink %r failed in %s() and is disabled; training continues without it: %s",
            state.sink,
            operation,
            state.last_error,
            exc_info=error,
        )

    @staticmethod
    def _record_failure(state: _SinkState, error: Exception) -> None:
        state.failures += 1
        state.last_error = f"{type(error).__name__}: {error}"

    def _report_losses(self) -> None:
        """At close: one line per sink that missed events, one for events no sink got."""
        for state in self._states:
            if state.dropped:
                logger.warning(
                    "telemetry sink %r missed %d events in this run (%s at close)",
                    state.sink,
                    state.dropped,
                    state.status.value,
                )
        for reason, counts in self._dropped.items():
            logger.warning(
                "telemetry dropped %d %s events that no sink received: %s",
                counts.total(),
                reason,
                ", ".join(f"{event_type} x{count}" for event_type, count in counts.items()),
            )


def _is_strict_forced() -> bool:
    value = os.environ.get(STRICT_TELEMETRY_ENV, "")
    if value not in ("", "0", "1"):
        raise ValueError(
            f"{STRICT_TELEMETRY_ENV}={value!r}: expected 1 (every hub strict), 0 or unset"
        )
    return value == "1"
