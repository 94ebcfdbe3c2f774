import pytest

from esper.leyline import (
    FactoredAction,
    Head,
    IllegalActionError,
    LifecycleLimits,
    Op,
    SlotReport,
    Stage,
    Tempo,
    check_action,
    legal_choices,
    legal_ops,
)

LIMITS = LifecycleLimits(min_prune_age=5, embargo_epochs=5)


def report(stage: Stage, **kw: object) -> SlotReport:
    return SlotReport(slot_id="r0c0", stage=stage, **kw)  # type: ignore[arg-type]


def test_dormant_can_only_germinate() -> None:
    assert legal_ops(report(Stage.DORMANT), LIMITS) == {Op.GERMINATE}


def test_prune_waits_for_min_age() -> None:
    assert Op.PRUNE not in legal_ops(report(Stage.TRAINING, seed_age=4), LIMITS)
    assert Op.PRUNE in legal_ops(report(Stage.TRAINING, seed_age=5), LIMITS)


def test_advance_needs_the_gate_and_fossilize_a_counterfactual() -> None:
    assert Op.ADVANCE not in legal_ops(report(Stage.TRAINING), LIMITS)
    assert Op.ADVANCE in legal_ops(report(Stage.TRAINING, passes_advance_gate=True), LIMITS)
    holding = report(Stage.HOLDING, alpha=1.0, alpha_target=1.0, passes_fossilize_gate=True)
    assert Op.FOSSILIZE not in legal_ops(holding, LIMITS)  # gate verdict alone is not a measurement
    measured = report(
        Stage.HOLDING, alpha=1.0, alpha_target=1.0, passes_fossilize_gate=True, contribution=2.0
    )
    assert Op.FOSSILIZE in legal_ops(measured, LIMITS)


@pytest.mark.parametrize("stage", [Stage.FOSSILIZED, Stage.PRUNED, Stage.EMBARGOED])
def test_terminal_and_resting_stages_allow_nothing(stage: Stage) -> None:
    assert legal_ops(report(stage, seed_age=99), LIMITS) == frozenset()


def test_committed_ramps_allow_nothing() -> None:
    assert legal_ops(report(Stage.BLENDING, seed_age=9, is_pruning=True), LIMITS) == frozenset()


def test_head_choices() -> None:
    holding = report(Stage.HOLDING, alpha=0.7, alpha_target=0.7)
    assert legal_choices(holding, Op.SET_ALPHA_TARGET, Head.ALPHA_TARGET) == (0.5, 1.0)
    assert Tempo.INSTANT not in legal_choices(holding, Op.GERMINATE, Head.TEMPO)  # type: ignore[operator]
    assert legal_choices(holding, Op.PRUNE, Head.TEMPO) is None


def test_check_action_names_op_stage_and_legal_ops() -> None:
    slots = {"r0c0": report(Stage.DORMANT)}
    with pytest.raises(
        IllegalActionError, match="ADVANCE is illegal on slot r0c0 in stage DORMANT"
    ):
        check_action(FactoredAction(Op.ADVANCE, slot="r0c0"), slots, LIMITS)
    with pytest.raises(IllegalActionError, match="unknown slot"):
        check_action(FactoredAction(Op.ADVANCE, slot="r9c9"), slots, LIMITS)
    germinate = FactoredAction.germinate("r0c0", "norm", tempo=Tempo.INSTANT)
    with pytest.raises(IllegalActionError, match="tempo"):
        check_action(germinate, slots, LIMITS)
    check_action(FactoredAction.wait(), slots, LIMITS)
