import json
import logging
import os
from pathlib import Path

import pytest
from fake_clock import FakeClock

from esper.leyline.events import Event, EventContext, Initiator, LifecycleEvent, RewardEvent
from esper.leyline.stages import Stage
from esper.nissa import (
    JsonlSink,
    MemorySink,
    SinkStatus,
    TelemetryHub,
    TelemetryLevel,
    read_events,
)


def lifecycle_event(epoch: int) -> Event:
    payload = LifecycleEvent(
        slot_id="r1c0",
        from_stage=Stage.HOLDING,
        to_stage=Stage.FOSSILIZED,
        reason="counterfactual 1.3 pp",
        initiator=Initiator.CONTROLLER,
        blueprint="attention",
    )
    return Event.wrap(payload, EventContext(run="run", group="A", env=1, round=3), epoch)


def test_jsonl_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = [lifecycle_event(epoch) for epoch in range(3)]
    sink = JsonlSink(path)
    for event in events:
        sink.write(event)
    sink.close()
    assert read_events(path) == [event.to_dict() for event in events]
    assert path.read_text().count("\n") == 3


def test_jsonl_lines_are_on_disk_before_close(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = JsonlSink(path)
    sink.write(lifecycle_event(0))
    assert json.loads(path.read_text())["type"] == "lifecycle"  # flushed, not buffered
    sink.close()


def test_jsonl_appends_to_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    for epoch in range(2):
        sink = JsonlSink(path)
        sink.write(lifecycle_event(epoch))
        sink.close()
    assert [event["epoch"] for event in read_events(path)] == [0, 1]


def test_reopening_after_crash_drops_the_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    complete = json.dumps(lifecycle_event(0).to_dict())
    path.write_text(complete + "\n" + complete[:25])  # the crash cut the second line
    sink = JsonlSink(path)
    sink.write(lifecycle_event(1))
    sink.close()
    assert [event["epoch"] for event in read_events(path)] == [0, 1]


def test_reopening_keeps_a_complete_last_line_missing_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(lifecycle_event(0).to_dict()))
    sink = JsonlSink(path)
    sink.write(lifecycle_event(1))
    sink.close()
    assert [event["epoch"] for event in read_events(path)] == [0, 1]


def test_unserializable_payload_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = JsonlSink(path)
    bad = Event(type="epoch", run="", group="", env=0, epoch=0, round=0, payload={"x": object()})
    with pytest.raises(TypeError):
        sink.write(bad)
    sink.write(lifecycle_event(1))
    sink.close()
    assert [event["epoch"] for event in read_events(path)] == [1]


def test_write_after_close_raises(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "events.jsonl")
    sink.close()
    sink.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="after close"):
        sink.write(lifecycle_event(0))


def test_a_file_replaced_under_the_sink_is_reopened_not_written_blind(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "events.jsonl"
    sink = JsonlSink(path)
    sink.write(lifecycle_event(0))
    (tmp_path / "other.jsonl").write_text("")
    os.replace(tmp_path / "other.jsonl", path)  # the old file is now unlinked
    with caplog.at_level(logging.WARNING, logger="esper.nissa.sinks"):
        sink.write(lifecycle_event(1))
        path.unlink()  # gone: the next write creates it again
        sink.write(lifecycle_event(2))
        sink.write(lifecycle_event(3))
    sink.close()
    assert [event["epoch"] for event in read_events(path)] == [2, 3]
    assert len(caplog.records) == 2  # once per replacement, not per event
    assert all("no longer names the file" in record.getMessage() for record in caplog.records)


def test_one_unserializable_payload_does_not_disable_events_jsonl(
    run_mode: None, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    with TelemetryHub([JsonlSink(path)], strict=False) as hub:
        for epoch in range(5):
            terms = {"loss": object() if epoch == 1 else 0.5}
            hub.emit_payload(RewardEvent(terms, 0.5), EventContext(), epoch)  # type: ignore[arg-type]
    assert [event["epoch"] for event in read_events(path)] == [0, 2, 3, 4]
    health = hub.health()
    assert health.dropped == {"unserializable": {"reward": 1}}
    assert [sink.status for sink in health.sinks] == [SinkStatus.OK]


def test_a_folder_replacing_events_jsonl_is_reported_and_writing_resumes_once_it_is_gone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    path = tmp_path / "events.jsonl"
    hub = TelemetryHub([JsonlSink(path)], clock=clock)
    hub.emit(lifecycle_event(0))
    path.unlink()
    path.mkdir()
    with caplog.at_level(logging.ERROR, logger="esper.nissa.hub"):
        for epoch in (1, 2, 3):  # the sink cannot open a folder: reported once, then dropped
            hub.emit(lifecycle_event(epoch))
            clock.advance(0.4)
    assert len(caplog.records) == 1
    assert "IsADirectoryError" in caplog.records[0].getMessage()
    path.rmdir()
    clock.advance(10.0)
    hub.emit(lifecycle_event(4))  # the retry reopens the path: a fresh file
    hub.emit(lifecycle_event(5))
    (sink,) = hub.health().sinks
    hub.close()
    assert [event["epoch"] for event in read_events(path)] == [4, 5]
    assert (sink.status, sink.dropped) == (SinkStatus.OK, 3)


def test_hub_with_jsonl_and_memory_sinks(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    memory = MemorySink()
    with TelemetryHub([JsonlSink(path), memory], level=TelemetryLevel.MINIMAL) as hub:
        hub.emit(lifecycle_event(0))
        hub.emit(Event(type="epoch", run="", group="", env=0, epoch=0, round=0, payload={}))
    assert [event["type"] for event in read_events(path)] == ["lifecycle"]
    assert [event.type for event in memory.events] == ["lifecycle"]


def test_memory_sink_refuses_writes_after_close() -> None:
    sink = MemorySink()
    sink.close()
    with pytest.raises(RuntimeError, match="after close"):
        sink.write(lifecycle_event(0))
