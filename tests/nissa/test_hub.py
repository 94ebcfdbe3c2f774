import logging

import pytest

from esper.leyline.events import Event, EventContext, Initiator, LifecycleEvent
from esper.leyline.stages import Stage
from esper.nissa import (
    EVENT_LEVELS,
    MemorySink,
    TelemetryHub,
    TelemetryLevel,
    event_level,
    is_written,
    parse_level,
)


def make_event(event_type: str, epoch: int = 0) -> Event:
    return Event(type=event_type, run="r", group="g", env=0, epoch=epoch, round=0, payload={})


class BrokenSink:
    def __init__(self) -> None:
        self.write_calls = 0

    def write(self, event: Event) -> None:
        self.write_calls += 1
        raise OSError("disk full")

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return "BrokenSink()"


class CloseFailsSink(MemorySink):
    def close(self) -> None:
        raise OSError("cannot close")


def test_parse_level_accepts_any_case() -> None:
    assert parse_level("debug") is TelemetryLevel.DEBUG
    assert parse_level("OFF") is TelemetryLevel.OFF


def test_parse_level_names_bad_value_and_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"'verbose'.*off, minimal, normal, debug"):
        parse_level("verbose")


def test_every_listed_event_is_written_at_some_level() -> None:
    assert all(level > TelemetryLevel.OFF for level in EVENT_LEVELS.values())


def test_unknown_event_types_are_normal() -> None:
    assert event_level("something_new") is TelemetryLevel.NORMAL
    assert is_written("something_new", TelemetryLevel.NORMAL)
    assert not is_written("something_new", TelemetryLevel.MINIMAL)


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (TelemetryLevel.OFF, []),
        (TelemetryLevel.MINIMAL, ["lifecycle"]),
        (TelemetryLevel.NORMAL, ["lifecycle", "epoch"]),
        (TelemetryLevel.DEBUG, ["lifecycle", "epoch", "slot_report"]),
    ],
)
def test_hub_filters_by_level(level: TelemetryLevel, expected: list[str]) -> None:
    sink = MemorySink()
    hub = TelemetryHub([sink], level=level)
    for event_type in ["lifecycle", "epoch", "slot_report"]:
        hub.emit(make_event(event_type))
    assert [event.type for event in sink.events] == expected


def test_failing_sink_is_reported_once_and_others_keep_receiving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken, good = BrokenSink(), MemorySink()
    hub = TelemetryHub([broken, good])
    with caplog.at_level(logging.ERROR, logger="esper.nissa.hub"):
        for epoch in range(3):
            hub.emit(make_event("epoch", epoch))
    assert [event.epoch for event in good.events] == [0, 1, 2]
    assert broken.write_calls == 1
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "BrokenSink()" in message
    assert "OSError: disk full" in message
    assert hub.sinks == (good,)


def test_sink_failing_to_close_is_reported_and_others_still_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing, good = CloseFailsSink(), MemorySink()
    with caplog.at_level(logging.ERROR, logger="esper.nissa.hub"):
        TelemetryHub([failing, good]).close()
    assert good.is_closed
    assert len(caplog.records) == 1
    assert "cannot close" in caplog.records[0].getMessage()


def test_context_manager_closes_sinks_even_on_error() -> None:
    sink = MemorySink()
    with pytest.raises(KeyError), TelemetryHub([sink]) as hub:
        hub.emit(make_event("epoch"))
        raise KeyError("training crashed")
    assert sink.is_closed
    assert len(sink.events) == 1


def test_emit_after_close_raises() -> None:
    hub = TelemetryHub([MemorySink()])
    hub.close()
    hub.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match=r"'epoch'.*closed"):
        hub.emit(make_event("epoch"))


def test_emit_payload_wraps_record_with_context() -> None:
    sink = MemorySink()
    hub = TelemetryHub([sink], level=TelemetryLevel.MINIMAL)
    payload = LifecycleEvent(
        slot_id="r0c1",
        from_stage=Stage.DORMANT,
        to_stage=Stage.GERMINATED,
        reason="plateau",
        initiator=Initiator.CONTROLLER,
        blueprint="conv_light",
    )
    hub.emit_payload(payload, EventContext(run="run1", group="A", env=2, round=7), epoch=4)
    (event,) = sink.events
    assert (event.type, event.run, event.group, event.env, event.round, event.epoch) == (
        "lifecycle",
        "run1",
        "A",
        2,
        7,
        4,
    )
    assert event.payload["to_stage"] == "GERMINATED"
    assert event.payload["initiator"] == "controller"


def test_emit_payload_below_level_is_not_serialized() -> None:
    class Unserializable:
        TYPE = "slot_report"  # DEBUG; Event.wrap would fail on a non-dataclass

    sink = MemorySink()
    TelemetryHub([sink], level=TelemetryLevel.NORMAL).emit_payload(
        Unserializable(), EventContext(), epoch=0
    )
    assert sink.events == []
