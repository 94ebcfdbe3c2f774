"""Seed lifecycle stages and the transition table (with the governor's one exception)."""

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

# The one way out of FOSSILIZED, open to the governor alone: a rollback removes a fossil that its
# healthy snapshot does not hold (fossilized since; see `esper.tolaria.governor` for why it is
# removed rather than restored).
GOVERNOR_TRANSITIONS: dict[Stage, frozenset[Stage]] = {Stage.FOSSILIZED: frozenset({Stage.PRUNED})}

# Stages in which a seed module exists and shapes (or learns beside) the host.
LIVE_STAGES = frozenset(
    {Stage.GERMINATED, Stage.TRAINING, Stage.BLENDING, Stage.HOLDING, Stage.FOSSILIZED}
)
# Live stages whose seed is still on probation: isolated from the host and prunable.
PROBATION_STAGES = frozenset({Stage.GERMINATED, Stage.TRAINING, Stage.BLENDING, Stage.HOLDING})


def is_transition_allowed(from_stage: Stage, to_stage: Stage, by_governor: bool = False) -> bool:
    """Whether `TRANSITIONS` allows the change (and, for the governor, `GOVERNOR_TRANSITIONS`)."""
    if to_stage in TRANSITIONS[from_stage]:
        return True
    return by_governor and to_stage in GOVERNOR_TRANSITIONS.get(from_stage, frozenset())
