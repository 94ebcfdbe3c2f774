"""Example walks through the seed lifecycle (docs/architecture.md §3 "Stages", §4 "Alpha schedule").

Every test drives a tiny `MorphogeneticModel` the way an environment does: an epoch passes
(`end_epoch` then `advance_boundary`), and between epochs the controller executes actions.
"""

from __future__ import annotations

import pytest

from esper.kasmina import CNNHost, MorphogeneticModel
from esper.kasmina.lifecycle import force_prune, remove_fossil
from esper.leyline import (
    ALPHA_TARGETS,
    BlendOp,
    Curve,
    FactoredAction,
    IllegalActionError,
    Initiator,
    LifecycleEvent,
    LifecycleLimits,
    Op,
    Stage,
    Tempo,
    legal_ops,
)

LIMITS = LifecycleLimits(min_prune_age=2, embargo_epochs=2)
SLOT = "r0c0"


def make_model(limits: LifecycleLimits = LIMITS) -> MorphogeneticModel:
    return MorphogeneticModel(CNNHost(widths=(2, 4)), limits=limits)


def epoch(model: MorphogeneticModel) -> list[LifecycleEvent]:
    """One epoch passes: the host trains, then the boundary runs the automatic transitions."""
    model.end_epoch()
    return model.advance_boundary()


def moves(events: list[LifecycleEvent]) -> list[tuple[Stage, Stage]]:
    return [(e.from_stage, e.to_stage) for e in events]


def germinate(
    model: MorphogeneticModel,
    tempo: Tempo = Tempo.FAST,
    target: float = 1.0,
    curve: Curve = Curve.LINEAR,
    blend: BlendOp = BlendOp.ADD,
) -> list[LifecycleEvent]:
    action = FactoredAction.germinate(
        SLOT, "conv_small", blend=blend, tempo=tempo, alpha_target=target, curve=curve
    )
    return model.execute(action)


def advance(model: MorphogeneticModel) -> list[LifecycleEvent]:
    return model.execute(FactoredAction(Op.ADVANCE, slot=SLOT))


def prune(model: MorphogeneticModel, tempo: Tempo = Tempo.INSTANT) -> list[LifecycleEvent]:
    return model.execute(FactoredAction(Op.PRUNE, slot=SLOT, tempo=tempo, curve=Curve.LINEAR))


def set_alpha_target(
    model: MorphogeneticModel, target: float, tempo: Tempo = Tempo.FAST, curve: Curve = Curve.COSINE
) -> list[LifecycleEvent]:
    action = FactoredAction(
        Op.SET_ALPHA_TARGET, slot=SLOT, tempo=tempo, alpha_target=target, curve=curve
    )
    return model.execute(action)


def grow_to_holding(
    model: MorphogeneticModel,
    target: float = 1.0,
    tempo: Tempo = Tempo.FAST,
    curve: Curve = Curve.LINEAR,
) -> None:
    germinate(model, tempo=tempo, target=target, curve=curve)
    epoch(model)  # -> TRAINING
    epoch(model)  # one epoch trained: G2 (permissive) passes
    advance(model)
    for _ in range(tempo.value):
        epoch(model)
    assert model.slot(SLOT).stage == Stage.HOLDING


def snapshot(model: MorphogeneticModel) -> tuple[object, ...]:
    slot = model.slot(SLOT)
    return (slot.stage, slot.alpha, slot.epochs_in_stage, slot.seed_age, slot.report())


def test_germinate_plants_a_seed_that_starts_training_after_one_epoch() -> None:
    model = make_model()

    events = germinate(model)

    assert moves(events) == [(Stage.DORMANT, Stage.GERMINATED)]
    assert events[0].initiator == Initiator.CONTROLLER
    assert events[0].blueprint == "conv_small"
    slot = model.slot(SLOT)
    assert slot.seed is not None
    assert slot.alpha == 0.0

    events = epoch(model)

    assert moves(events) == [(Stage.GERMINATED, Stage.TRAINING)]
    assert events[0].initiator == Initiator.AUTOMATIC
    assert slot.stage == Stage.TRAINING
    assert slot.alpha == 0.0  # the host still cannot see the seed


def test_seed_with_insane_output_is_pruned_instead_of_training(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = make_model()
    germinate(model)
    monkeypatch.setattr(model.slot(SLOT), "probe_output_sane", lambda: False)

    events = epoch(model)

    assert moves(events) == [(Stage.GERMINATED, Stage.PRUNED)]
    assert events[0].initiator == Initiator.AUTOMATIC
    assert "G1 failed" in events[0].reason


def test_germinate_with_an_unknown_blueprint_is_an_illegal_action() -> None:
    model = make_model()
    action = FactoredAction.germinate(SLOT, "no_such_blueprint", tempo=Tempo.FAST)

    with pytest.raises(IllegalActionError, match="no_such_blueprint"):
        model.execute(action)
    assert model.slot(SLOT).stage == Stage.DORMANT


def test_action_on_a_slot_that_is_not_enabled_is_illegal() -> None:
    model = MorphogeneticModel(CNNHost(widths=(2, 4)), slots=["r0c1"], limits=LIMITS)

    with pytest.raises(IllegalActionError, match=r"ADVANCE.*r0c0"):
        model.execute(FactoredAction(Op.ADVANCE, slot="r0c0"))


@pytest.mark.parametrize("curve", list(Curve), ids=lambda c: c.name)
@pytest.mark.parametrize("target", ALPHA_TARGETS)
def test_fast_ramp_reaches_holding_after_three_boundaries_exactly_at_target(
    target: float, curve: Curve
) -> None:
    model = make_model()
    germinate(model, tempo=Tempo.FAST, target=target, curve=curve)
    epoch(model)
    epoch(model)

    assert moves(advance(model)) == [(Stage.TRAINING, Stage.BLENDING)]
    slot = model.slot(SLOT)
    assert slot.alpha == 0.0
    assert slot.report().alpha_steps_left == 3

    alphas = []
    for _ in range(2):
        assert epoch(model) == []
        assert slot.stage == Stage.BLENDING
        alphas.append(slot.alpha)
    events = epoch(model)

    assert moves(events) == [(Stage.BLENDING, Stage.HOLDING)]
    assert events[0].initiator == Initiator.AUTOMATIC
    assert 0.0 < alphas[0] < alphas[1] < target
    assert slot.alpha == target  # exactly, not approximately
    assert slot.report().alpha_steps_left == 0


def test_fossilize_needs_a_measured_counterfactual() -> None:
    model = make_model()
    grow_to_holding(model, target=1.0)

    assert Op.FOSSILIZE not in legal_ops(model.reports()[SLOT], LIMITS)
    with pytest.raises(IllegalActionError, match="FOSSILIZE"):
        model.execute(FactoredAction(Op.FOSSILIZE, slot=SLOT))

    model.slot(SLOT).measured.contribution = 0.3
    events = model.execute(FactoredAction(Op.FOSSILIZE, slot=SLOT))

    assert moves(events) == [(Stage.HOLDING, Stage.FOSSILIZED)]  # at alpha 1: at once


def test_fossilize_at_partial_alpha_ramps_to_one_then_fossilizes_by_itself() -> None:
    model = make_model()
    grow_to_holding(model, target=0.5, tempo=Tempo.FAST)
    slot = model.slot(SLOT)
    slot.measured.contribution = 2.0
    slot.measured.contribution_stderr = 0.1

    events = model.execute(FactoredAction(Op.FOSSILIZE, slot=SLOT))

    assert moves(events) == [(Stage.HOLDING, Stage.BLENDING)]
    assert slot.report().is_fossilizing
    assert legal_ops(slot.report(), LIMITS) == frozenset()  # a committed ramp runs to its end
    assert slot.alpha == 0.5

    for _ in range(2):
        assert epoch(model) == []
        assert 0.5 < slot.alpha < 1.0
    events = epoch(model)

    assert moves(events) == [(Stage.BLENDING, Stage.HOLDING), (Stage.HOLDING, Stage.FOSSILIZED)]
    assert all(e.initiator == Initiator.AUTOMATIC for e in events)
    assert slot.stage == Stage.FOSSILIZED
    assert slot.alpha == 1.0
    assert not slot.is_isolated
    assert not slot.report().is_fossilizing


def test_fossilized_seed_is_permanent() -> None:
    model = make_model()
    grow_to_holding(model, target=1.0)
    slot = model.slot(SLOT)
    slot.measured.contribution = 1.0
    model.execute(FactoredAction(Op.FOSSILIZE, slot=SLOT))
    for _ in range(LIMITS.min_prune_age + 1):
        epoch(model)

    assert Op.PRUNE not in legal_ops(slot.report(), LIMITS)
    with pytest.raises(IllegalActionError, match="PRUNE"):
        prune(model)
    assert force_prune(slot, "governor rollback", Initiator.GOVERNOR) == []
    assert slot.stage == Stage.FOSSILIZED
    assert slot.alpha == 1.0
    assert model.seed_param_count() == slot.seed_params > 0


def test_prune_with_a_tempo_ramps_to_zero_then_embargoes_then_rests() -> None:
    model = make_model()
    grow_to_holding(model, target=1.0, tempo=Tempo.FAST)
    slot = model.slot(SLOT)

    events = prune(model, tempo=Tempo.FAST)

    assert moves(events) == [(Stage.HOLDING, Stage.BLENDING)]
    assert slot.report().is_pruning
    assert slot.alpha == 1.0  # the host is not shocked: alpha ramps down from here
    alphas = []
    for _ in range(2):
        assert epoch(model) == []
        alphas.append(slot.alpha)
    assert 1.0 > alphas[0] > alphas[1] > 0.0

    events = epoch(model)

    assert moves(events) == [(Stage.BLENDING, Stage.PRUNED)]
    assert events[0].initiator == Initiator.AUTOMATIC
    assert slot.alpha == 0.0
    assert not slot.is_live
    assert model.seed_param_count() == 0

    events = epoch(model)

    assert moves(events) == [(Stage.PRUNED, Stage.EMBARGOED)]
    assert slot.seed is None and slot.gate is None  # module freed on entering EMBARGOED
    assert slot.seed_params == 0
    with pytest.raises(IllegalActionError, match="GERMINATE"):
        germinate(model)

    assert epoch(model) == []  # embargo: 1 of 2 epochs
    events = epoch(model)

    assert moves(events) == [(Stage.EMBARGOED, Stage.DORMANT)]
    assert moves(germinate(model)) == [(Stage.DORMANT, Stage.GERMINATED)]


def test_prune_of_a_seed_the_host_cannot_see_is_immediate() -> None:
    model = make_model()
    germinate(model)
    epoch(model)
    epoch(model)  # age 2, still TRAINING at alpha 0

    events = prune(model, tempo=Tempo.SLOW)

    assert moves(events) == [(Stage.TRAINING, Stage.PRUNED)]


def test_prune_refused_before_min_prune_age() -> None:
    model = make_model()
    germinate(model)
    epoch(model)  # seed age 1 < min_prune_age 2
    before = snapshot(model)

    assert Op.PRUNE not in legal_ops(model.reports()[SLOT], LIMITS)
    with pytest.raises(IllegalActionError, match="PRUNE"):
        prune(model)
    assert snapshot(model) == before

    epoch(model)  # seed age 2

    assert moves(prune(model)) == [(Stage.TRAINING, Stage.PRUNED)]


@pytest.mark.parametrize(
    "stage", [Stage.GERMINATED, Stage.TRAINING, Stage.BLENDING], ids=lambda s: s.name
)
def test_governor_force_prune_works_at_any_age(stage: Stage) -> None:
    patient = LifecycleLimits(min_prune_age=5, embargo_epochs=2)
    model = make_model(patient)
    germinate(model)
    if stage >= Stage.TRAINING:
        epoch(model)
    if stage == Stage.BLENDING:
        epoch(model)
        advance(model)
        epoch(model)  # mid-ramp: the host already sees the seed
    slot = model.slot(SLOT)
    assert slot.stage == stage
    assert Op.PRUNE not in legal_ops(slot.report(), patient)  # too young for the controller

    events = force_prune(slot, "loss exploded", Initiator.GOVERNOR)

    assert moves(events) == [(stage, Stage.PRUNED)]
    assert events[0].initiator == Initiator.GOVERNOR
    assert events[0].reason == "loss exploded"
    assert slot.alpha == 0.0
    assert moves(epoch(model)) == [(Stage.PRUNED, Stage.EMBARGOED)]


def test_the_governor_removes_a_fossil_with_exactly_one_event() -> None:
    model = make_model()
    grow_to_holding(model, target=1.0)
    slot = model.slot(SLOT)
    slot.measured.contribution = 1.0
    model.execute(FactoredAction(Op.FOSSILIZE, slot=SLOT))

    events = remove_fossil(slot, "governor rollback: not in the snapshot")

    assert moves(events) == [(Stage.FOSSILIZED, Stage.PRUNED)]
    assert events[0].initiator == Initiator.GOVERNOR
    assert events[0].reason == "governor rollback: not in the snapshot"
    assert not slot.is_live and slot.alpha == 0.0 and model.seed_param_count() == 0
    assert moves(epoch(model)) == [(Stage.PRUNED, Stage.EMBARGOED)]


def test_remove_fossil_refuses_a_seed_that_is_not_a_fossil() -> None:
    model = make_model()
    germinate(model)
    with pytest.raises(ValueError, match="GERMINATED, not FOSSILIZED"):
        remove_fossil(model.slot(SLOT), "rollback")
    assert model.slot(SLOT).stage == Stage.GERMINATED


def test_force_prune_leaves_an_empty_slot_alone() -> None:
    model = make_model()

    assert force_prune(model.slot(SLOT), "rollback", Initiator.GOVERNOR) == []
    assert model.slot(SLOT).stage == Stage.DORMANT


def test_set_alpha_target_refused_to_the_current_target() -> None:
    model = make_model()
    grow_to_holding(model, target=0.7)
    before = snapshot(model)

    with pytest.raises(IllegalActionError, match="SET_ALPHA_TARGET"):
        set_alpha_target(model, 0.7)
    assert snapshot(model) == before


def test_set_alpha_target_refused_while_not_holding() -> None:
    model = make_model()
    with pytest.raises(IllegalActionError, match="SET_ALPHA_TARGET"):
        set_alpha_target(model, 0.5)  # DORMANT
    germinate(model, target=1.0)
    epoch(model)
    with pytest.raises(IllegalActionError, match="SET_ALPHA_TARGET"):
        set_alpha_target(model, 0.5)  # TRAINING
    epoch(model)
    advance(model)
    epoch(model)
    before = snapshot(model)

    with pytest.raises(IllegalActionError, match="SET_ALPHA_TARGET"):
        set_alpha_target(model, 0.5)  # BLENDING: retargeting only once holding
    assert snapshot(model) == before


@pytest.mark.parametrize("curve", list(Curve), ids=lambda c: c.name)
def test_set_alpha_target_from_holding_ramps_to_the_new_target(curve: Curve) -> None:
    # Every curve, LINEAR (whose enum value is 0, i.e. falsy) included.
    model = make_model()
    grow_to_holding(model, target=0.5)
    slot = model.slot(SLOT)

    events = set_alpha_target(model, 1.0, tempo=Tempo.FAST, curve=curve)

    assert moves(events) == [(Stage.HOLDING, Stage.BLENDING)]
    assert slot.alpha == 0.5
    assert epoch(model) == []
    assert epoch(model) == []
    assert moves(epoch(model)) == [(Stage.BLENDING, Stage.HOLDING)]
    assert slot.alpha == 1.0
