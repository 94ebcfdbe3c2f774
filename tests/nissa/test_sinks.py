import json
from pathlib import Path

import pytest

from esper.leyline.events import Event, EventContext, Initiator, LifecycleEvent
from esper.leyline.stages import Stage
from esper.nissa import JsonlSink, MemorySink, TelemetryHub, TelemetryLevel, read_events


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
