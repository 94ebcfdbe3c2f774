"""The telemetry hub: one place that filters events by level and fans them out to sinks."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from esper.leyline.events import Event, EventContext
from esper.nissa.levels import TelemetryLevel, is_written
from esper.nissa.sinks import Sink

# A broken sink is reported through logging rather than `warnings.warn`: nothing the caller can
# change in their code fixes a full disk, and `-W error` (or pytest's `filterwarnings = error`)
# would turn a warning into an exception: what a telemetry failure must never become.
logger = logging.getLogger(__name__)


class TelemetryHub:
    """Sends each event the run's level allows to every sink that still works.

    Telemetry failures never kill training: a sink that raises is reported once (a logged error
    naming the sink and the exception), disabled, and the other sinks carry on.

    Args:
        sinks: where events go (e.g. a `JsonlSink` for events.jsonl, a `MemorySink`).
        level: events of types whose level is above this one are dropped (see `EVENT_LEVELS`).
    """

    def __init__(
        self, sinks: Iterable[Sink], level: TelemetryLevel = TelemetryLevel.NORMAL
    ) -> None:
        self.level = level
        self._sinks = list(sinks)
        self._is_closed = False

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """The sinks still receiving events (failed ones have been removed)."""
        return tuple(self._sinks)

    def emit(self, event: Event) -> None:
        """Write `event` to every working sink, unless its type needs a more verbose level."""
        self._check_open(event.type)
        if not is_written(event.type, self.level):
            return
        for sink in list(self._sinks):
            try:
                sink.write(event)
            except Exception as error:
                self._disable(sink, "write", error)
                # Release what the broken sink holds (an open file); it has been reported already.
                with contextlib.suppress(Exception):
                    sink.close()

    def emit_payload(self, payload: Any, context: EventContext, epoch: int) -> None:
        """Wrap a payload record (a dataclass with a `TYPE` tag) in an `Event` and emit it.

        The level is checked first, so a payload that will not be written is never serialized.
        """
        self._check_open(payload.TYPE)
        if is_written(payload.TYPE, self.level):
            self.emit(Event.wrap(payload, context, epoch))

    def close(self) -> None:
        """Close every working sink (a sink failing to close is reported like a failed write)."""
        if self._is_closed:
            return
        self._is_closed = True
        for sink in list(self._sinks):
            try:
                sink.close()
            except Exception as error:
                self._disable(sink, "close", error)
        self._sinks.clear()

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

    def _disable(self, sink: Sink, operation: str, error: Exception) -> None:
        self._sinks.remove(sink)
        logger.error(
            "telemetry sink %r failed in %s() and is disabled; training continues without it: "
            "%s: %s",
            sink,
            operation,
            type(error).__name__,
            error,
            exc_info=error,
        )
