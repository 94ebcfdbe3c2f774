import json

import numpy as np

from esper.leyline import Event, EventContext, Initiator, LifecycleEvent, RewardEvent, Stage


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


def test_numpy_scalars_in_a_payload_become_plain_json_numbers() -> None:
    payload = RewardEvent({"terminal": np.float32(0.5), "count": np.int64(3)}, np.float64(0.25))
    row = json.loads(json.dumps(Event.wrap(payload, EventContext(), epoch=0).to_dict()))
    assert row["payload"] == {"terms": {"terminal": 0.5, "count": 3}, "total": 0.25}
