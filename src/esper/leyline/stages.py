"""Seed lifecycle stages and the one transition table."""

from __future__ import annotations

from enum import IntEnum


class Stage(IntEnum):
    """Where a slot's seed is in its life. Codes are stable: they appear in events and features."""

    DORMANT = 0
    GERMINATED = 1
    TRAINING = 2
    BLENDING = 3
    HOLDING = 4
    FOSSILIZED = 5
    PRUNED = 6
    EMBARGOED = 7


# Every allowed stage change. The lifecycle executor refuses anything not listed here.
TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    Stage.DORMANT: frozenset({Stage.GERMINATED}),
    Stage.GERMINATED: frozenset({Stage.TRAINING, Stage.PRUNED}),
    Stage.TRAINING: frozenset({Stage.BLENDING, Stage.PRUNED}),
    Stage.BLENDING: frozenset({Stage.HOLDING, Stage.PRUNED}),
    Stage.HOLDING: frozenset({Stage.FOSSILIZED, Stage.BLENDING, Stage.PRUNED}),
    Stage.FOSSILIZED: frozenset(),
    Stage.PRUNED: frozenset({Stage.EMBARGOED}),
    Stage.EMBARGOED: frozenset({Stage.DORMANT}),
}

# Stages in which a seed module exists and shapes (or learns beside) the host.
LIVE_STAGES = frozenset(
    {Stage.GERMINATED, Stage.TRAINING, Stage.BLENDING, Stage.HOLDING, Stage.FOSSILIZED}
)
# Live stages whose seed is still on probation: isolated from the host and prunable.
PROBATION_STAGES = frozenset({Stage.GERMINATED, Stage.TRAINING, Stage.BLENDING, Stage.HOLDING})


def is_transition_allowed(from_stage: Stage, to_stage: Stage) -> bool:
    return to_stage in TRANSITIONS[from_stage]
