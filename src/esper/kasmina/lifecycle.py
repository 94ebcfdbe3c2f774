"""The lifecycle executor: the only code that changes a slot's stage or alpha plan.

Three entry points, called in this order every env step:
- `end_epoch(slot)` after the host trained one epoch (counts epochs in stage and seed age);
- `execute(slot, action)` for the controller's action (after `legal_ops` has been consulted:
  an illegal action raises `IllegalActionError`);
- `advance_boundary(slot)` at the epoch boundary: ticks alpha and runs the automatic transitions.
Every stage change goes through `_transition`, which checks the transition table and returns
exactly one `LifecycleEvent`.
"""

from __future__ import annotations

from esper.kasmina.alpha_schedule import AlphaSchedule
from esper.kasmina.blueprints import blueprint_names
from esper.kasmina.gates import g1_sanity
from esper.kasmina.slot import BlendPlan, SeedSlot
from esper.leyline import (
    PROBATION_STAGES,
    Curve,
    FactoredAction,
    IllegalActionError,
    Initiator,
    LifecycleEvent,
    Op,
    Stage,
    Tempo,
    check_action,
    is_transition_allowed,
)


def _transition(
    slot: SeedSlot, to_stage: Stage, reason: str, initiator: Initiator
) -> LifecycleEvent:
    by_governor = initiator == Initiator.GOVERNOR
    if not is_transition_allowed(slot.stage, to_stage, by_governor=by_governor):
        raise IllegalActionError(
            f"slot {slot.slot_id}: transition {slot.stage.name} -> {to_stage.name} is not allowed"
        )
    event = LifecycleEvent(
        slot_id=slot.slot_id,
        from_stage=slot.stage,
        to_stage=to_stage,
        reason=reason,
        initiator=initiator,
        blueprint=slot.blueprint,
    )
    slot.stage = to_stage
    slot.epochs_in_stage = 0
    return event


def end_epoch(slot: SeedSlot) -> None:
    """Count one completed training epoch."""
    slot.epochs_in_stage += 1
    if slot.is_live:
        slot.seed_age += 1


def execute(slot: SeedSlot, action: FactoredAction) -> list[LifecycleEvent]:
    """Carry out a controller action on its slot. Raises IllegalActionError if it is illegal."""
    if action.op == Op.WAIT:
        return []
    if action.slot != slot.slot_id:
        raise ValueError(f"action targets slot {action.slot}, not {slot.slot_id}")
    check_action(action, {slot.slot_id: slot.report()}, slot.limits, blueprint_names(slot.family))
    controller = Initiator.CONTROLLER
    if action.op == Op.GERMINATE:
        assert action.blueprint and action.blend is not None and action.tempo is not None
        assert action.alpha_target is not None and action.curve is not None
        slot.plant(
            action.blueprint,
            action.blend,
            BlendPlan(action.alpha_target, action.tempo, action.curve),
        )
        return [_transition(slot, Stage.GERMINATED, f"germinate {action.blueprint}", controller)]
    if action.op == Op.ADVANCE:
        assert slot.plan is not None
        slot.alpha_schedule = AlphaSchedule(0.0, slot.plan.target, slot.plan.tempo, slot.plan.curve)
        return [_transition(slot, Stage.BLENDING, "advance (G2 passed)", controller)]
    if action.op == Op.SET_ALPHA_TARGET:
        assert action.alpha_target is not None and action.tempo is not None
        assert action.curve is not None
        slot.alpha_schedule.retarget(action.alpha_target, action.tempo, action.curve)
        return [
            _transition(
                slot, Stage.BLENDING, f"retarget alpha to {action.alpha_target}", controller
            )
        ]
    if action.op == Op.FOSSILIZE:
        return _fossilize(slot)
    if action.op == Op.PRUNE:
        assert action.tempo is not None and action.curve is not None
        return _prune(slot, action.tempo, action.curve)
    raise AssertionError(f"unhandled op {action.op!r}")


def _fossilize(slot: SeedSlot) -> list[LifecycleEvent]:
    """At alpha 1 the seed fossilizes now; at a partial alpha it first ramps to 1 (G3 passed
    on the measured counterfactual) and fossilizes when the ramp ends."""
    m = slot.measured
    evidence = f"G3 passed: {m.contribution:+.2f} pp" if m.contribution is not None else "G3"
    if m.contribution_stderr is not None:
        evidence += f" ± {m.contribution_stderr:.2f}"
    if slot.alpha >= 1.0:
        return [
            _transition(slot, Stage.FOSSILIZED, f"fossilize ({evidence})", Initiator.CONTROLLER)
        ]
    assert slot.plan is not None
    slot.alpha_schedule.retarget(1.0, slot.plan.tempo, slot.plan.curve)
    slot.is_fossilizing = True
    return [
        _transition(
            slot, Stage.BLENDING, "ramp to alpha 1 before fossilizing", Initiator.CONTROLLER
        )
    ]


def _prune(slot: SeedSlot, tempo: Tempo, curve: Curve) -> list[LifecycleEvent]:
    """INSTANT (or a seed the host cannot see yet) is pruned now; otherwise alpha ramps to 0
    first so the host is not shocked, and the seed is pruned when the ramp ends."""
    if tempo == Tempo.INSTANT or slot.alpha == 0.0:
        return [_transition(slot, Stage.PRUNED, "prune", Initiator.CONTROLLER)]
    slot.alpha_schedule = AlphaSchedule(slot.alpha, 0.0, tempo, curve)
    slot.is_pruning = True
    if slot.stage == Stage.HOLDING:
        return [
            _transition(
                slot, Stage.BLENDING, "ramp to alpha 0 before pruning", Initiator.CONTROLLER
            )
        ]
    return []


def force_prune(slot: SeedSlot, reason: str, initiator: Initiator) -> list[LifecycleEvent]:
    """Prune a probationary seed now, whatever its age (used by the governor)."""
    if slot.stage not in PROBATION_STAGES:
        return []
    slot.is_pruning = slot.is_fossilizing = False
    return [_transition(slot, Stage.PRUNED, reason, initiator)]


def remove_fossil(slot: SeedSlot, reason: str) -> list[LifecycleEvent]:
    """Prune a fossil now (the governor's rollback, for a fossil its snapshot does not hold):
    the only way out of FOSSILIZED, see `GOVERNOR_TRANSITIONS`."""
    if slot.stage != Stage.FOSSILIZED:
        raise ValueError(f"slot {slot.slot_id} is {slot.stage.name}, not FOSSILIZED")
    return [_transition(slot, Stage.PRUNED, reason, Initiator.GOVERNOR)]


def advance_boundary(slot: SeedSlot) -> list[LifecycleEvent]:
    """Tick alpha and run the automatic transitions due at this epoch boundary."""
    auto = Initiator.AUTOMATIC
    if slot.stage == Stage.BLENDING:
        slot.alpha_schedule.tick()
        if slot.alpha_schedule.is_ramping:
            return []
        if slot.is_pruning:
            return [_transition(slot, Stage.PRUNED, "alpha reached 0: completing PRUNE", auto)]
        events = [_transition(slot, Stage.HOLDING, f"alpha reached {slot.alpha:g}", auto)]
        if slot.is_fossilizing:
            slot.is_fossilizing = False
            events.append(
                _transition(slot, Stage.FOSSILIZED, "alpha reached 1: completing FOSSILIZE", auto)
            )
        return events
    if slot.stage == Stage.GERMINATED and slot.epochs_in_stage >= 1:
        slot.seed_output_sane = slot.probe_output_sane()
        verdict = g1_sanity(slot.report())
        if verdict.passed:
            return [_transition(slot, Stage.TRAINING, verdict.message, auto)]
        return [_transition(slot, Stage.PRUNED, verdict.message, auto)]
    if slot.stage == Stage.PRUNED and slot.epochs_in_stage >= 1:
        slot.clear()
        return [_transition(slot, Stage.EMBARGOED, "seed freed", auto)]
    if slot.stage == Stage.EMBARGOED and slot.epochs_in_stage >= slot.limits.embargo_epochs:
        return [_transition(slot, Stage.DORMANT, "embargo over", auto)]
    return []
