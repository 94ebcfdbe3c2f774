import json
import logging

import pytest
from fake_clock import FakeClock

from esper.leyline.events import (
    Event,
    EventContext,
    Initiator,
    LifecycleEvent,
    RewardEvent,
    RunEndEvent,
)
from esper.leyline.stages import Stage
from esper.nissa import (
    EVENT_LEVELS,
    STRICT_TELEMETRY_ENV,
    MemorySink,
    SinkStatus,
    TelemetryError,
    TelemetryHub,
    TelemetryLevel,
    event_level,
    is_written,
    parse_level,
)


def make_event(event_type: str, epoch: int = 0) -> Event:
    return Event(type=event_type, run="r", group="g", env=0, epoch=epoch, round=0, payload={})


def reward(terms: dict[str, object]) -> RewardEvent:
    return RewardEvent(terms=terms, total=0.0)  # type: ignore[arg-type]  # bad values on purpose


class BrokenSink:
    """Every write fails with an I/O error (a full disk that stays full)."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock
        self.write_times: list[float] = []  # when each write was attempted

    @property
    def write_calls(self) -> int:
        return len(self.write_times)

    def write(self, event: Event) -> None:
        self.write_times.append(self.clock() if self.clock else 0.0)
        raise OSError("disk full")

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return "BrokenSink()"


class CloseFailsSink(MemorySink):
    def close(self) -> None:
        raise OSError("cannot close")


class FlakySink(MemorySink):
    """Fails with an I/O error while `is_failing`, then writes again."""

    def __init__(self) -> None:
        super().__init__()
        self.is_failing = False

    def write(self, event: Event) -> None:
        if self.is_failing:
            raise OSError("no space left on device")
        super().write(event)


class BuggySink(MemorySink):
    """A sink with a bug: its write raises something other than an I/O error."""

    def __init__(self) -> None:
        super().__init__()
        self.write_calls = 0

    def write(self, event: Event) -> None:
        self.write_calls += 1
        raise KeyError("payload")

    def __repr__(self) -> str:
        return "BuggySink()"


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
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    broken, good = BrokenSink(), MemorySink()
    hub = TelemetryHub([broken, good], clock=clock)
    with caplog.at_level(logging.ERROR, logger="esper.nissa.hub"):
        for epoch in range(3):
            hub.emit(make_event("epoch", epoch))
    assert [event.epoch for event in good.events] == [0, 1, 2]
    assert broken.write_calls == 1  # no time has passed: not retried yet
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "BrokenSink()" in message
    assert "OSError: disk full" in message
    assert hub.sinks == (good,)


def test_a_permanently_failing_sink_is_reported_once_and_retried_with_backoff(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    broken = BrokenSink(clock)
    hub = TelemetryHub([broken], clock=clock)
    with caplog.at_level(logging.WARNING, logger="esper.nissa.hub"):
        for epoch in range(1000):  # one event a second for 1000 s
            hub.emit(make_event("epoch", epoch))
            clock.advance(1.0)
        assert len(caplog.records) == 1  # one report, not one per event or per retry
        hub.close()
    # Retries 1, 2, 4, ... s apart, then every 60 s: 22 attempts in 1000 s, not 1000.
    assert broken.write_times[:8] == [0, 1, 3, 7, 15, 31, 63, 123]
    assert broken.write_calls == 22
    (sink,) = hub.health().sinks
    assert (sink.status, sink.failures, sink.dropped) == (SinkStatus.RETRYING, 22, 1000)
    assert sink.last_error == "OSError: disk full"
    assert "missed 1000 events" in caplog.records[-1].getMessage()  # the report at close


def test_a_sink_that_recovers_gets_events_again_and_reports_what_it_missed(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    flaky = FlakySink()
    hub = TelemetryHub([flaky], clock=clock)
    hub.emit(make_event("epoch", 0))
    flaky.is_failing = True
    with caplog.at_level(logging.WARNING, logger="esper.nissa.hub"):
        for epoch in (1, 2, 3):
            hub.emit(make_event("epoch", epoch))
        flaky.is_failing = False
        hub.emit(make_event("epoch", 4))  # within the backoff: not tried, dropped
        clock.advance(1.0)
        hub.emit(make_event("epoch", 5))
        hub.emit(make_event("epoch", 6))
    assert [event.epoch for event in flaky.events] == [0, 5, 6]
    assert [record.levelno for record in caplog.records] == [logging.ERROR, logging.WARNING]
    assert "recovered" in caplog.records[1].getMessage()
    assert "missed 4 events" in caplog.records[1].getMessage()
    (sink,) = hub.health().sinks
    assert (sink.status, sink.failures, sink.dropped) == (SinkStatus.OK, 1, 4)
    assert hub.sinks == (flaky,)


def test_in_a_run_a_buggy_sink_is_disabled_once_and_never_retried(
    run_mode: None, caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    buggy, good = BuggySink(), MemorySink()
    hub = TelemetryHub([buggy, good], strict=False, clock=clock)
    with caplog.at_level(logging.ERROR, logger="esper.nissa.hub"):
        for epoch in range(5):
            hub.emit(make_event("epoch", epoch))
            clock.advance(100.0)
    assert buggy.write_calls == 1
    assert buggy.is_closed  # what it holds is released
    assert len(good.events) == 5
    assert len(caplog.records) == 1
    assert "BuggySink()" in caplog.records[0].getMessage()
    assert caplog.records[0].exc_info is not None  # a bug: the traceback is logged
    health = {sink.sink: sink for sink in hub.health().sinks}
    assert (health["BuggySink()"].status, health["BuggySink()"].dropped) == (
        SinkStatus.DISABLED,
        5,
    )


def test_a_strict_hub_raises_a_sink_bug() -> None:
    hub = TelemetryHub([BuggySink()])
    with pytest.raises(KeyError, match="payload"):
        hub.emit(make_event("epoch"))


def test_a_strict_hub_raises_on_an_unserializable_payload_naming_the_field() -> None:
    sink = MemorySink()
    hub = TelemetryHub([sink])
    with pytest.raises(TelemetryError) as raised:
        hub.emit_payload(reward({"accuracy": 0.1, "foo": object()}), EventContext(), epoch=0)
    assert str(raised.value) == "payload.terms.foo: cannot serialize <class 'object'>"
    raw = Event("epoch", "r", "g", 0, 0, 0, payload={"metrics": {"foo": object()}})
    with pytest.raises(TypeError) as raised:  # a TelemetryError is a TypeError
        hub.emit(raw)
    assert str(raised.value) == "payload.metrics.foo: cannot serialize <class 'object'>"
    assert sink.events == []


def test_in_a_run_an_unserializable_event_is_dropped_counted_and_reported_once(
    run_mode: None, caplog: pytest.LogCaptureFixture
) -> None:
    sink = MemorySink()
    hub = TelemetryHub([sink], strict=False)
    with caplog.at_level(logging.ERROR, logger="esper.nissa.hub"):
        for step in range(5):
            terms = {"foo": object()} if step % 2 else {"foo": 0.5}
            hub.emit_payload(reward(terms), EventContext(), epoch=step)
        hub.emit(Event("epoch", "r", "g", 0, 9, 0, payload={"x": {1, 2}}))
    assert [event.epoch for event in sink.events] == [0, 2, 4]
    assert hub.sinks == (sink,)  # the sink did nothing wrong
    assert hub.health().dropped == {"unserializable": {"reward": 2, "epoch": 1}}
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2  # once per event type
    assert "payload.terms.foo: cannot serialize <class 'object'>" in messages[0]
    assert "payload.x: cannot serialize <class 'set'>" in messages[1]


def test_the_test_suite_makes_every_hub_strict() -> None:
    hub = TelemetryHub([MemorySink()], strict=False)
    assert hub.is_strict
    with pytest.raises(TelemetryError):
        hub.emit_payload(reward({"foo": object()}), EventContext(), epoch=0)


def test_run_mode_without_the_override(run_mode: None) -> None:
    assert not TelemetryHub([], strict=False).is_strict
    assert TelemetryHub([]).is_strict  # the default, for library code and tests


def test_a_bad_strict_override_names_the_allowed_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STRICT_TELEMETRY_ENV, "yes")
    with pytest.raises(ValueError, match=r"ESPER_TELEMETRY_STRICT='yes'.*1.*0"):
        TelemetryHub([])


def test_health_goes_into_run_end_as_json(run_mode: None, clock: FakeClock) -> None:
    memory = MemorySink()
    hub = TelemetryHub([BrokenSink(), memory], strict=False, clock=clock)
    hub.emit_payload(reward({"foo": object()}), EventContext(), epoch=0)
    hub.emit(make_event("epoch"))
    hub.emit_payload(RunEndEvent("completed", 1.5, telemetry=hub.health()), EventContext(), 0)
    row = json.loads(memory.events[-1].to_json())
    assert row["payload"]["telemetry"] == {
        "dropped": {"unserializable": {"reward": 1}},
        "sinks": [
            {
                "sink": "BrokenSink()",
                "status": "retrying",
                "failures": 1,
                "dropped": 1,
                "last_error": "OSError: disk full",
            },
            {
                "sink": "MemorySink(1 events)",
                "status": "ok",
                "failures": 0,
                "dropped": 0,
                "last_error": None,
            },
        ],
    }


def test_sink_failing_to_close_is_reported_and_others_still_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing, good = CloseFailsSink(), MemorySink()
    with caplog.at_level(logging.ERROR, logger="esper.nissa.hub"):
        TelemetryHub([failing, good]).close()
    assert good.is_closed
    assert len(caplog.records) == 1
    assert "cannot close" in caplog.records[0].getMessage()


def test_a_strict_hub_closes_every_sink_before_raising_a_close_bug() -> None:
    class CloseBugSink(MemorySink):
        def close(self) -> None:
            raise AttributeError("no file")

    good = MemorySink()
    with pytest.raises(AttributeError, match="no file"):
        TelemetryHub([CloseBugSink(), good]).close()
    assert good.is_closed


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
