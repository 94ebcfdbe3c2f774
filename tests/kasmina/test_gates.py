"""Gates G1/G2/G3 under both profiles, at the thresholds of docs/architecture.md §11.

Strict G2: >= 3 epochs trained, seed-to-host gradient ratio >= 0.10, prospective gain >= 0.5 pp.
Strict G3: contribution >= 1.0 pp and above 2 standard errors.
Permissive keeps only the structural checks.
"""

from __future__ import annotations

from typing import Any

import pytest

from esper.kasmina import (
    PERMISSIVE,
    STRICT,
    CNNHost,
    GateResult,
    MorphogeneticModel,
    g1_sanity,
    g2_advance,
    g3_fossilize,
    gate_profile,
)
from esper.leyline import (
    Curve,
    FactoredAction,
    IllegalActionError,
    LifecycleLimits,
    Op,
    SlotReport,
    Stage,
    Tempo,
)

# Just at every strict threshold: each case below moves one figure off it.
G2_STRICT_PASS: dict[str, Any] = {"epochs_in_stage": 3, "gradient_ratio": 0.10, "prospective": 0.5}
G3_STRICT_PASS: dict[str, Any] = {"contribution": 1.0, "contribution_stderr": 0.4}


def report(stage: Stage = Stage.TRAINING, **fields: Any) -> SlotReport:
    return SlotReport(slot_id="r0c0", stage=stage, **fields)


def failed_checks(result: GateResult) -> set[str]:
    return {c.name for c in result.checks if not c.passed}


def assert_fails_on(result: GateResult, gate: str, checks: set[str], *fragments: str) -> None:
    """The gate failed on exactly `checks`, and its message says why."""
    assert not result.passed
    assert failed_checks(result) == checks
    assert result.message.startswith(f"{gate} failed")
    for fragment in fragments:
        assert fragment in result.message


def test_profiles_carry_the_design_thresholds() -> None:
    assert gate_profile("strict") == STRICT
    assert gate_profile("permissive") == PERMISSIVE
    assert (STRICT.min_training_epochs, STRICT.min_gradient_ratio) == (3, 0.10)
    assert (STRICT.min_prospective_pp, STRICT.min_contribution_pp) == (0.5, 1.0)
    assert STRICT.min_contribution_stderrs == 2.0
    with pytest.raises(ValueError, match="permissive"):
        gate_profile("lenient")


# G1: sanity (GERMINATED -> TRAINING)


def test_g1_passes_a_sane_seed() -> None:
    result = g1_sanity(report(Stage.GERMINATED, seed_output_sane=True))

    assert result.passed
    assert result.message == "G1 passed"


def test_g1_fails_a_seed_with_bad_output() -> None:
    result = g1_sanity(report(Stage.GERMINATED, seed_output_sane=False))

    assert_fails_on(result, "G1", {"output_sane"}, "non-finite or misshapen")


# G2: advance (TRAINING -> BLENDING)


@pytest.mark.parametrize(
    "fields",
    [
        {"epochs_in_stage": 1},
        {"epochs_in_stage": 1, "gradient_ratio": 0.001},  # alive is enough
        {"epochs_in_stage": 1, "gradient_ratio": 0.5, "prospective": -3.0},  # gain not asked
    ],
)
def test_g2_permissive_passes_any_live_seed_trained_one_epoch(fields: dict[str, Any]) -> None:
    result = g2_advance(report(**fields), PERMISSIVE)

    assert result.passed, result.message
    assert result.message == "G2 passed"


def test_g2_permissive_fails_an_untrained_seed() -> None:
    result = g2_advance(report(epochs_in_stage=0), PERMISSIVE)

    assert_fails_on(result, "G2", {"epochs_trained"}, "trained 0 < 1 epochs")


def test_g2_permissive_fails_dead_seed_gradients() -> None:
    result = g2_advance(report(epochs_in_stage=4, gradient_ratio=0.0), PERMISSIVE)

    assert_fails_on(result, "G2", {"gradients_alive"}, "gradients are 0")


def test_g2_strict_passes_exactly_at_the_thresholds() -> None:
    result = g2_advance(report(**G2_STRICT_PASS), STRICT)

    assert result.passed, result.message
    assert {c.name for c in result.checks} == {
        "epochs_trained",
        "gradient_ratio",
        "prospective_gain",
    }


@pytest.mark.parametrize(
    ("change", "check", "fragment"),
    [
        ({"epochs_in_stage": 2}, "epochs_trained", "trained 2 < 3 epochs"),
        ({"gradient_ratio": 0.099}, "gradient_ratio", "gradient ratio 0.099 < 0.1"),
        ({"gradient_ratio": None}, "gradient_ratio", "gradient ratio None"),
        ({"prospective": 0.49}, "prospective_gain", "prospective gain 0.49 pp < 0.5 pp"),
        ({"prospective": None}, "prospective_gain", "prospective gain None"),
    ],
    ids=["2-epochs", "ratio-below", "ratio-unmeasured", "gain-below", "gain-unmeasured"],
)
def test_g2_strict_fails_just_below_one_threshold(
    change: dict[str, Any], check: str, fragment: str
) -> None:
    result = g2_advance(report(**{**G2_STRICT_PASS, **change}), STRICT)

    assert_fails_on(result, "G2", {check}, fragment)


def test_g2_strict_names_every_failing_check() -> None:
    result = g2_advance(report(epochs_in_stage=1, gradient_ratio=0.01, prospective=0.1), STRICT)

    assert_fails_on(
        result,
        "G2",
        {"epochs_trained", "gradient_ratio", "prospective_gain"},
        "trained 1 < 3 epochs",
        "gradient ratio 0.01",
        "prospective gain 0.1 pp",
    )


# G3: fossilize (HOLDING -> FOSSILIZED)


@pytest.mark.parametrize("contribution", [-2.0, 0.0, 0.3])
def test_g3_permissive_passes_any_measured_counterfactual(contribution: float) -> None:
    result = g3_fossilize(report(Stage.HOLDING, contribution=contribution), PERMISSIVE)

    assert result.passed, result.message


def test_g3_permissive_fails_without_a_measurement() -> None:
    result = g3_fossilize(report(Stage.HOLDING), PERMISSIVE)

    assert_fails_on(result, "G3", {"counterfactual_measured"}, "no measured counterfactual")


def test_g3_strict_passes_exactly_at_the_contribution_threshold() -> None:
    result = g3_fossilize(report(Stage.HOLDING, **G3_STRICT_PASS), STRICT)

    assert result.passed, result.message


@pytest.mark.parametrize(
    ("change", "check", "fragment"),
    [
        ({"contribution": 0.99, "contribution_stderr": 0.1}, "contribution", "0.99 pp < 1.0 pp"),
        ({"contribution_stderr": 0.5}, "significance", "within 2.0 standard errors (0.5)"),
        ({"contribution": 5.0, "contribution_stderr": None}, "significance", "standard errors"),
    ],
    ids=["below-1pp", "exactly-2-stderr", "stderr-unmeasured"],
)
def test_g3_strict_fails_just_below_one_threshold(
    change: dict[str, Any], check: str, fragment: str
) -> None:
    result = g3_fossilize(report(Stage.HOLDING, **{**G3_STRICT_PASS, **change}), STRICT)

    assert_fails_on(result, "G3", {check}, fragment)


def test_g3_strict_without_a_measurement_fails_every_check() -> None:
    result = g3_fossilize(report(Stage.HOLDING), STRICT)

    assert_fails_on(
        result,
        "G3",
        {"counterfactual_measured", "contribution", "significance"},
        "no measured counterfactual",
    )


# The active profile decides what the controller may do


def test_strict_model_refuses_advance_until_the_g2_thresholds_are_met() -> None:
    model = MorphogeneticModel(
        CNNHost(widths=(2, 4)), limits=LifecycleLimits(min_prune_age=2), gates=STRICT
    )
    germinate = FactoredAction.germinate("r0c0", "norm", tempo=Tempo.FAST, curve=Curve.COSINE)
    model.execute(germinate)
    slot = model.slot("r0c0")
    advance = FactoredAction(Op.ADVANCE, slot="r0c0")
    for _ in range(3):  # -> TRAINING, then 2 epochs trained
        model.end_epoch()
        model.advance_boundary()
    slot.measured.gradient_ratio = 0.2
    slot.measured.prospective = 0.8

    assert not model.reports()["r0c0"].passes_advance_gate
    with pytest.raises(IllegalActionError, match="ADVANCE"):
        model.execute(advance)

    model.end_epoch()  # 3 epochs trained

    assert model.reports()["r0c0"].passes_advance_gate
    model.execute(advance)
    assert slot.stage == Stage.BLENDING
