import json

from esper.leyline import Event, EventContext, Initiator, LifecycleEvent, Stage


def test_lifecycle_event_envelope_is_json_ready() -> None:
    payload = LifecycleEvent(
        "r0c1", Stage.HOLDING, Stage.FOSSILIZED, "fossilize", Initiator.CONTROLLER
    )
    event = Event.wrap(payload, EventContext(run="r", group="A", env=2, round=3), epoch=7)
    row = json.loads(json.dumps(event.to_dict()))
    assert row["type"] == "lifecycle"
    assert (row["run"], row["group"], row["env"], row["epoch"], row["round"]) == ("r", "A", 2, 7, 3)
    assert row["payload"]["from_stage"] == "HOLDING"
    assert row["payload"]["initiator"] == "controller"
