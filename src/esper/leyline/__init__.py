"""Contracts: the shared vocabulary every other package speaks. Plain Python, no torch.

Stages and their transition table, ops and action heads, slot ids, the one legality oracle
(`legal_ops`), signal and report records, the telemetry event schema, and shared defaults.
"""

from esper.leyline.actions import (
    ALPHA_TARGETS,
    FIXED_HEAD_CHOICES,
    HEAD_ORDER,
    HEADS_USED,
    BlendOp,
    Curve,
    FactoredAction,
    Head,
    Op,
    Tempo,
    flat_action_names,
    flat_to_factored,
)
from esper.leyline.constants import DEFAULT_LIMITS, SIGMOID_STEEPNESS, LifecycleLimits
from esper.leyline.events import (
    EpisodeEvent,
    EpochEvent,
    Event,
    EventContext,
    Initiator,
    LifecycleEvent,
    PPOUpdateEvent,
    RewardEvent,
    RollbackEvent,
    RoundEvent,
    RunEndEvent,
    RunStartEvent,
    WorkerEvent,
)
from esper.leyline.legality import (
    IllegalActionError,
    budget_left,
    check_action,
    check_budget,
    legal_choices,
    legal_ops,
)
from esper.leyline.signals import EpisodeOutcome, EpochMetrics, SlotReport
from esper.leyline.slot_id import SlotId, SlotIdError, parse_slot_id, slot_id, sort_slot_ids
from esper.leyline.stages import (
    LIVE_STAGES,
    PROBATION_STAGES,
    TRANSITIONS,
    Stage,
    is_transition_allowed,
)

__all__ = [
    "ALPHA_TARGETS",
    "DEFAULT_LIMITS",
    "FIXED_HEAD_CHOICES",
    "HEADS_USED",
    "HEAD_ORDER",
    "LIVE_STAGES",
    "PROBATION_STAGES",
    "SIGMOID_STEEPNESS",
    "TRANSITIONS",
    "BlendOp",
    "Curve",
    "EpisodeEvent",
    "EpisodeOutcome",
    "EpochEvent",
    "EpochMetrics",
    "Event",
    "EventContext",
    "FactoredAction",
    "Head",
    "IllegalActionError",
    "Initiator",
    "LifecycleEvent",
    "LifecycleLimits",
    "Op",
    "PPOUpdateEvent",
    "RewardEvent",
    "RollbackEvent",
    "RoundEvent",
    "RunEndEvent",
    "RunStartEvent",
    "SlotId",
    "SlotIdError",
    "SlotReport",
    "Stage",
    "Tempo",
    "WorkerEvent",
    "budget_left",
    "check_action",
    "check_budget",
    "flat_action_names",
    "flat_to_factored",
    "is_transition_allowed",
    "legal_choices",
    "legal_ops",
    "parse_slot_id",
    "slot_id",
    "sort_slot_ids",
]
