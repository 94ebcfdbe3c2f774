"""The one legality oracle. Masks, the lifecycle executor and rewards all ask `legal_ops`."""

from __future__ import annotations

from collections.abc import Mapping

from esper.leyline.actions import ALPHA_TARGETS, HEADS_USED, FactoredAction, Head, Op, Tempo
from esper.leyline.constants import DEFAULT_LIMITS, LifecycleLimits
from esper.leyline.signals import SlotReport
from esper.leyline.stages import LIVE_STAGES, PROBATION_STAGES, Stage


class IllegalActionError(ValueError):
    """An action that `legal_ops` forbids reached the executor."""


def legal_ops(slot: SlotReport, limits: LifecycleLimits = DEFAULT_LIMITS) -> frozenset[Op]:
    """The ops that may target this slot now (WAIT targets no slot and is always legal)."""
    if slot.is_pruning or slot.is_fossilizing:
        return frozenset()  # a committed ramp runs to its end
    ops: set[Op] = set()
    if slot.stage == Stage.DORMANT:
        ops.add(Op.GERMINATE)
    if slot.stage == Stage.TRAINING and slot.passes_advance_gate:
        ops.add(Op.ADVANCE)
    if slot.stage == Stage.HOLDING:
        ops.add(Op.SET_ALPHA_TARGET)
        if slot.passes_fossilize_gate and slot.has_counterfactual:
            ops.add(Op.FOSSILIZE)
    if slot.stage in PROBATION_STAGES and slot.seed_age >= limits.min_prune_age:
        ops.add(Op.PRUNE)
    return frozenset(ops)


def legal_choices(slot: SlotReport, op: Op, head: Head) -> tuple[object, ...] | None:
    """Allowed values of a fixed-choice head for `op` on `slot`; None means all of them.

    GERMINATE starts a real ramp (never INSTANT); a retarget must change the target.
    """
    if head not in HEADS_USED[op]:
        raise ValueError(f"{op.name} does not use head '{head.value}'")
    if head == Head.TEMPO and op == Op.GERMINATE:
        return tuple(t for t in Tempo if t != Tempo.INSTANT)
    if head == Head.ALPHA_TARGET and op == Op.SET_ALPHA_TARGET:
        return tuple(a for a in ALPHA_TARGETS if a != slot.alpha_target)
    return None


def check_action(
    action: FactoredAction,
    slots: Mapping[str, SlotReport],
    limits: LifecycleLimits = DEFAULT_LIMITS,
    blueprints: tuple[str, ...] | None = None,
) -> None:
    """Raise IllegalActionError, naming what is wrong, unless `action` is legal now."""
    if action.op == Op.WAIT:
        return
    assert action.slot is not None  # FactoredAction guarantees it for every op but WAIT
    if action.slot not in slots:
        raise IllegalActionError(
            f"{action.op.name} targets unknown slot {action.slot!r}; enabled: {sorted(slots)}"
        )
    report = slots[action.slot]
    allowed = legal_ops(report, limits)
    if action.op not in allowed:
        raise IllegalActionError(
            f"{action.op.name} is illegal on slot {action.slot} in stage {report.stage.name} "
            f"(age {report.seed_age}); legal there: {sorted(o.name for o in allowed) or 'none'}"
        )
    if (
        blueprints is not None
        and action.blueprint is not None
        and action.blueprint not in blueprints
    ):
        raise IllegalActionError(
            f"{action.op.name} names unknown blueprint {action.blueprint!r}; known: {blueprints}"
        )
    for head, value in ((Head.TEMPO, action.tempo), (Head.ALPHA_TARGET, action.alpha_target)):
        if head in HEADS_USED[action.op]:
            choices = legal_choices(report, action.op, head)
            if choices is not None and value not in choices:
                raise IllegalActionError(
                    f"{head.value}={value!r} is illegal for {action.op.name} on slot "
                    f"{action.slot}; allowed: {choices}"
                )


def budget_left(slots: Mapping[str, SlotReport], limits: LifecycleLimits) -> int | None:
    """What the live seeds leave of `limits.param_budget` (None: there is no budget). A
    GERMINATE is legal only if the seed it plants adds at most this many parameters."""
    if limits.param_budget is None:
        return None
    return limits.param_budget - sum(
        r.seed_params for r in slots.values() if r.stage in LIVE_STAGES
    )


def check_budget(action: FactoredAction, cost: int, left: int | None) -> None:
    """Raise IllegalActionError unless the seed `action` plants (`cost` parameters) fits what
    `budget_left` leaves (`left`; None: no budget)."""
    if left is not None and cost > left:
        raise IllegalActionError(
            f"GERMINATE {action.blueprint} on slot {action.slot} adds {cost} parameters; "
            f"the parameter budget has {left} left"
        )
