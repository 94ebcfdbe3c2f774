"""Telemetry event schema: an envelope (`Event`) around a typed payload record.

Every line of a run's `events.jsonl` is one `Event.to_json()`. Payload records are frozen
dataclasses with a `TYPE` tag; one generic `LifecycleEvent` covers every stage change. A value
that has no JSON form raises `TelemetryError` naming its field, when the event is built or first
serialized, never later inside a sink.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import numbers
import time
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, ClassVar

from esper.leyline.signals import EpisodeOutcome, EpochMetrics
from esper.leyline.stages import Stage


class Initiator(StrEnum):
    CONTROLLER = "controller"  # an op chosen by the heuristic or the policy
    AUTOMATIC = (
        "automatic"  # an epoch-boundary transition (gate passed, ramp finished, embargo over)
    )
    GOVERNOR = "governor"  # a rollback after a training catastrophe


@dataclass(frozen=True)
class LifecycleEvent:
    """One stage change of one slot."""

    TYPE: ClassVar[str] = "lifecycle"

    slot_id: str
    from_stage: Stage
    to_stage: Stage
    reason: str
    initiator: Initiator
    blueprint: str | None = None


@dataclass(frozen=True)
class EpochEvent:
    """One host epoch of one env: metrics, the slots' stages and alphas, the step's reward."""

    TYPE: ClassVar[str] = "epoch"

    metrics: EpochMetrics
    stages: dict[str, str]  # slot id -> stage name
    alphas: dict[str, float]
    action: str  # what the controller did before this epoch, e.g. "GERMINATE r0c1 conv_light"
    reward: float
    seed_params: int


@dataclass(frozen=True)
class RewardEvent:
    """The named terms of one step's reward (they sum to the reward)."""

    TYPE: ClassVar[str] = "reward"

    terms: dict[str, float]
    total: float


@dataclass(frozen=True)
class RollbackEvent:
    """The governor restored the last healthy snapshot."""

    TYPE: ClassVar[str] = "governor"

    reason: str
    loss: float
    pruned_slots: tuple[str, ...]


@dataclass(frozen=True)
class EpisodeEvent:
    """How one episode ended (test accuracy is reported here and never used as a reward)."""

    TYPE: ClassVar[str] = "episode"

    episode: int
    seed: int
    controller: str
    outcome: EpisodeOutcome
    growth_ratio: float
    wall_time_s: float


@dataclass(frozen=True)
class RunStartEvent:
    TYPE: ClassVar[str] = "run_start"

    command: str
    task: str
    controller: str
    episodes: int  # host episodes the run will play in all
    envs: int
    config: dict[str, Any]
    rounds: int = 0  # PPO rounds (each one episode per env, then an update); 0: no rounds
    episode_length: int = 0  # host epochs per episode (0: not given)
    first_round: int = 0  # the round a resumed PPO run starts from


class TelemetryError(TypeError):
    """A telemetry event holds a value with no JSON form; the message names the field."""


class SinkStatus(StrEnum):
    OK = "ok"
    RETRYING = "retrying"  # an I/O error: its events are dropped until a retry succeeds
    DISABLED = "disabled"  # a bug in the sink (an error other than OSError): never written again


@dataclass(frozen=True)
class SinkHealth:
    """How one telemetry sink fared in a run."""

    sink: str  # the sink's repr, e.g. "JsonlSink('runs/.../events.jsonl')"
    status: SinkStatus
    failures: int  # failed writes (first failures and retries) and closes
    dropped: int  # events this sink did not receive because it was failing
    last_error: str | None  # e.g. "OSError: [Errno 28] No space left on device"


@dataclass(frozen=True)
class TelemetryHealth:
    """What telemetry lost in a run: events no sink received, and each sink's failures."""

    dropped: dict[str, dict[str, int]]  # reason ("unserializable") -> event type -> count
    sinks: tuple[SinkHealth, ...]


@dataclass(frozen=True)
class RunEndEvent:
    TYPE: ClassVar[str] = "run_end"

    status: str  # "completed", "interrupted" or "failed"
    wall_time_s: float
    # The hub's health when run_end is emitted; None when the caller did not report it.
    telemetry: TelemetryHealth | None = None


@dataclass(frozen=True)
class WorkerEvent:
    """A worker process that died or missed its deadline was replaced, and the episodes of its
    envs replayed from their seeds up to the step it failed in (the round is unchanged)."""

    TYPE: ClassVar[str] = "worker"

    worker: int
    envs: tuple[int, ...]
    cause: str  # e.g. "killed by SIGKILL", "exit code 1", "no answer within 900 s"
    failures: int  # consecutive failures of these envs, this one included
    replayed_steps: int


@dataclass(frozen=True)
class PPOUpdateEvent:
    """Health of one PPO update."""

    TYPE: ClassVar[str] = "ppo_update"

    policy_loss: float
    value_loss: float
    entropy: dict[str, float]  # per head: mean normalized entropy over the steps it was used
    approx_kl: float
    clip_fraction: float
    explained_variance: float
    grad_norm: float
    epochs_run: int
    initial_log_prob_error: float
    entropy_coef: float
    learning_rate: float


@dataclass(frozen=True)
class RoundEvent:
    """One PPO round: what the envs achieved and where the wall time went."""

    TYPE: ClassVar[str] = "round"

    mean_return: float
    mean_val_accuracy: float
    mean_test_accuracy: float
    mean_params_added: float
    op_counts: dict[str, int]  # how often each op was chosen this round
    timing_s: dict[str, float]  # phase -> seconds
    compiled_graphs: int = 0  # torch.compile graphs compiled this round (0: compile off)


@dataclass(frozen=True)
class EventContext:
    """Where an event comes from: which run, policy group, env and PPO round."""

    run: str = ""
    group: str = ""
    env: int = 0
    round: int = 0


@dataclass(frozen=True)
class Event:
    type: str
    run: str
    group: str
    env: int
    epoch: int
    round: int
    payload: dict[str, Any]
    time: float = field(default_factory=time.time)

    @staticmethod
    def wrap(payload: Any, context: EventContext, epoch: int) -> Event:
        """Envelope a payload record (a dataclass with a TYPE tag)."""
        return Event(
            type=payload.TYPE,
            run=context.run,
            group=context.group,
            env=context.env,
            epoch=epoch,
            round=context.round,
            payload=payload_to_dict(payload),
        )

    def to_json(self) -> str:
        """This event as one events.jsonl line (without the newline).

        Serialized once and kept: the hub serializes each event before any sink sees it, and
        the JSONL sink writes the same string. Non-finite floats are written as `NaN`/`Infinity`,
        which `json.loads` (and so `read_events`) reads back.

        Raises:
            TelemetryError: naming the first value with no JSON form, e.g. `payload.terms.foo`.
        """
        return self._json

    @functools.cached_property
    def _json(self) -> str:
        return json.dumps({key: _jsonable(value, key) for key, value in self.to_dict().items()})

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "time": self.time,
            "run": self.run,
            "group": self.group,
            "env": self.env,
            "epoch": self.epoch,
            "round": self.round,
            "payload": self.payload,
        }


def payload_to_dict(payload: Any) -> dict[str, Any]:
    """JSON-ready dict of a payload record: enums by name, nested dataclasses flattened.

    Raises:
        TelemetryError: naming the first field with no JSON form, e.g. `payload.terms.foo`.
    """
    if not dataclasses.is_dataclass(payload) or isinstance(payload, type):
        raise TelemetryError(f"payload: expected a dataclass record, got {type(payload)}")
    record: dict[str, Any] = _jsonable(payload, "payload")
    return record


def _jsonable(value: Any, path: str) -> Any:
    """`value` as plain JSON types; `path` (e.g. `payload.terms.foo`) names it in an error."""
    if isinstance(value, Enum):
        return value.name if not isinstance(value, str) else value.value
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, numbers.Integral):  # numpy integers are not ints
        return int(value)
    if isinstance(value, numbers.Real):  # numpy float32 is not a float
        return float(value)
    # Walked field by field rather than with dataclasses.asdict, which deep-copies every leaf
    # and would fail on an odd value without saying which field holds it.
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _jsonable(getattr(value, f.name), f"{path}.{f.name}")
            for f in dataclasses.fields(value)
        }
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise TelemetryError(f"{path}: cannot serialize {type(value)}")
