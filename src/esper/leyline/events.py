"""Telemetry event schema: an envelope (`Event`) around a typed payload record.

Every line of a run's `events.jsonl` is one `Event.to_dict()`. Payload records are frozen
dataclasses with a `TYPE` tag; one generic `LifecycleEvent` covers every stage change.
"""

from __future__ import annotations

import dataclasses
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
    episodes: int
    envs: int
    config: dict[str, Any]


@dataclass(frozen=True)
class RunEndEvent:
    TYPE: ClassVar[str] = "run_end"

    status: str  # "completed", "interrupted" or "failed"
    wall_time_s: float


@dataclass(frozen=True)
class PPOUpdateEvent:
    """Health of one PPO update."""

    TYPE: ClassVar[str] = "ppo_update"

    policy_loss: float
    value_loss: float
    entropy: dict[str, float]  # per head, normalized
    approx_kl: float
    clip_fraction: float
    explained_variance: float
    grad_norm: float
    epochs_run: int
    initial_log_prob_error: float
    entropy_coef: float


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
    """JSON-ready dict of a payload record: enums by name, nested dataclasses flattened."""
    return {k: _jsonable(v) for k, v in dataclasses.asdict(payload).items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.name if not isinstance(value, str) else value.value
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, numbers.Integral):  # numpy integers are not ints
        return int(value)
    if isinstance(value, numbers.Real):  # numpy float32 is not a float
        return float(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
