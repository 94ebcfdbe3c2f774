import dataclasses
import json

import numpy as np
import pytest

from esper.leyline import (
    EpochEvent,
    EpochMetrics,
    Event,
    EventContext,
    Initiator,
    LifecycleEvent,
    RewardEvent,
    RollbackEvent,
    Stage,
)
from esper.leyline.events import TelemetryError


def epoch_metrics() -> EpochMetrics:
    return EpochMetrics(
        epoch=1,
        train_loss=0.5,
        train_accuracy=80.0,
        val_loss=0.6,
        val_accuracy=75.0,
        val_loss_delta=0.0,
        val_accuracy_delta=0.0,
        best_val_accuracy=75.0,
        plateau_epochs=0,
        is_stabilized=False,
    )


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


def test_nested_records_become_dicts_and_tuples_lists() -> None:
    payload = EpochEvent(epoch_metrics(), {"r0c1": "TRAINING"}, {"r0c1": 0.5}, "WAIT", 0.1, 10)
    rollback = RollbackEvent("loss is not finite", float("inf"), ("r0c1", "r1c0"))
    assert Event.wrap(payload, EventContext(), 1).payload["metrics"] == dataclasses.asdict(
        epoch_metrics()
    )
    assert Event.wrap(rollback, EventContext(), 1).payload["pruned_slots"] == ["r0c1", "r1c0"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            RewardEvent({"accuracy": 0.1, "foo": object()}, 0.1),  # type: ignore[dict-item]
            "payload.terms.foo: cannot serialize <class 'object'>",
        ),
        (
            EpochEvent(
                dataclasses.replace(epoch_metrics(), val_accuracy=np.zeros(2)), {}, {}, "", 0, 0
            ),
            "payload.metrics.val_accuracy: cannot serialize <class 'numpy.ndarray'>",
        ),
        (
            RollbackEvent("nan", 0.0, ("r0c1", {"r1c0"})),  # type: ignore[arg-type]
            "payload.pruned_slots[1]: cannot serialize <class 'set'>",
        ),
    ],
)
def test_an_unserializable_payload_raises_at_wrap_naming_the_field(
    payload: object, message: str
) -> None:
    with pytest.raises(TelemetryError) as raised:
        Event.wrap(payload, EventContext(), epoch=0)
    assert str(raised.value) == message
    assert isinstance(raised.value, TypeError)


def test_to_json_is_the_events_jsonl_line_and_checks_a_raw_payload() -> None:
    event = Event("reward", "r", "A", 1, 2, 3, payload={"total": np.float32(0.5)}, time=10.0)
    assert json.loads(event.to_json()) == {**event.to_dict(), "payload": {"total": 0.5}}
    raw = Event("epoch", "r", "A", 0, 0, 0, payload={"metrics": {"foo": object()}})
    with pytest.raises(TelemetryError, match=r"^payload\.metrics\.foo: cannot serialize"):
        raw.to_json()
