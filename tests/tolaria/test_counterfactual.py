"""Counterfactual contributions: reference values, and what real seeds on digits measure."""

import copy
import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from esper.kasmina import blueprint_names
from esper.leyline import BlendOp, FactoredAction, Op, Stage, Tempo
from esper.tolaria import (
    DataOptions,
    EvalStats,
    HostSession,
    evaluate,
    get_task,
    paired_difference,
)
from esper.tolaria.counterfactual import Contribution, Probe, contributions, probes


def test_paired_difference_matches_a_hand_computation() -> None:
    better = torch.tensor([1, 1, 0, 1, 0], dtype=torch.bool)
    worse = torch.tensor([0, 1, 0, 0, 1], dtype=torch.bool)
    # d = [1, 0, 0, 1, -1]: mean 0.2; sample variance (0.64+0.04+0.04+0.64+1.44)/4 = 0.7.
    mean, stderr = paired_difference(better, worse)
    assert mean == pytest.approx(20.0, abs=1e-12)
    assert stderr == pytest.approx(100 * math.sqrt(0.7 / 5), abs=1e-12)


def test_paired_difference_of_identical_or_single_samples_has_no_error() -> None:
    same = torch.tensor([True, False, True])
    assert paired_difference(same, same) == (0.0, 0.0)
    assert paired_difference(torch.tensor([True]), torch.tensor([False])) == (100.0, 0.0)


def test_contributions_sign_conventions_and_shape_check() -> None:
    found = [Probe("r0c0", False, {"r0c0": 0.0}), Probe("r0c1", True, {"r0c1": 1.0})]
    correct = torch.tensor(
        [
            [1, 1, 0, 0],  # real
            [1, 0, 0, 0],  # r0c0 at alpha 0: the real model gets one more right
            [1, 1, 1, 0],  # r0c1 at alpha 1: one more right than the real model
        ],
        dtype=torch.bool,
    )
    measured = contributions(found, _stats(correct))
    assert [(c.slot_id, c.is_prospective) for c in measured] == [
        ("r0c0", False),
        ("r0c1", True),
    ]
    assert measured[0].value_pp == pytest.approx(25.0)
    assert measured[1].value_pp == pytest.approx(25.0)
    with pytest.raises(ValueError, match="expected 3 configurations, got 2"):
        contributions(found, _stats(correct[:2]))


def test_a_configuration_with_a_non_finite_loss_counts_every_sample_wrong() -> None:
    """Its argmax over NaN logits is meaningless (class 0, right for a tenth of the samples)."""
    found = [Probe("r0c1", True, {"r0c1": 1.0})]
    correct = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    (measured,) = contributions(found, _stats(correct, losses=(0.5, math.nan)))
    assert measured.value_pp == pytest.approx(-75.0)
    assert measured.stderr_pp == pytest.approx(25.0)  # d = [-1, -1, -1, 0]


def _stats(correct: Tensor, losses: tuple[float, ...] | None = None) -> EvalStats:
    k = correct.shape[0]
    accuracies = tuple((100.0 * correct.float().mean(dim=1)).tolist())
    return EvalStats(losses or (0.5,) * k, accuracies, correct)


# -- real seeds on a digits host that has trained a few epochs ------------------------------------

HOST_EPOCHS = 8


@pytest.fixture(scope="module")
def trained_digits() -> tuple[Any, Any, dict[str, Tensor]]:
    task = get_task("digits")
    data = task.load(DataOptions())
    session = HostSession(task, data)
    session.reset(0)
    for _ in range(HOST_EPOCHS):
        result = session.train_and_evaluate()
    assert result.val.accuracy > 60  # precondition: the host has learned something to lose
    return task, data, copy.deepcopy(session.model.host.state_dict())


@pytest.fixture
def session(trained_digits: tuple[Any, Any, dict[str, Tensor]]) -> HostSession:
    task, data, host_state = trained_digits
    fresh = HostSession(task, data)
    fresh.reset(0)
    fresh.model.host.load_state_dict(host_state)
    return fresh


def germinate(session: HostSession, slot: str, blueprint: str, blend: BlendOp) -> None:
    session.apply(FactoredAction.germinate(slot, blueprint, blend=blend, tempo=Tempo.FAST))


def pass_epoch_untrained(session: HostSession) -> None:
    """An epoch boundary without training, so a seed keeps its birth weights."""
    session.model.end_epoch()
    session.boundary()


def walk_to(session: HostSession, slot: str, stage: Stage) -> None:
    model = session.model
    while model.slot(slot).stage != stage:
        if model.slot(slot).report().passes_advance_gate:
            session.apply(FactoredAction(Op.ADVANCE, slot=slot))
        pass_epoch_untrained(session)
        assert model.slot(slot).stage != Stage.PRUNED


def measure(session: HostSession) -> list[Contribution]:
    """The session's counterfactual measurement on validation, without training first."""
    found = probes(session.model)
    val = evaluate(session.model, session.val_loader, [{}, *(p.config for p in found)])
    return contributions(found, val)


class NoiseSeed(nn.Module):
    """A seed that adds large noise to the activation it is given."""

    def forward(self, x: Tensor) -> Tensor:
        return x + 10.0 * torch.randn_like(x)


@pytest.mark.parametrize("stage", [Stage.BLENDING, Stage.HOLDING], ids=lambda s: s.name)
def test_a_seed_that_outputs_noise_has_a_strongly_negative_contribution(
    session: HostSession, stage: Stage
) -> None:
    germinate(session, "r0c1", "conv_light", BlendOp.ADD)
    walk_to(session, "r0c1", stage)
    slot = session.model.slot("r0c1")
    assert slot.alpha > 0
    slot.seed = NoiseSeed()
    torch.manual_seed(0)

    (measured,) = measure(session)

    assert (measured.slot_id, measured.is_prospective) == ("r0c1", False)
    assert measured.value_pp < -20
    assert measured.value_pp < -5 * measured.stderr_pp


def test_a_training_seed_gone_nan_measures_clearly_harmful_and_leaves_the_real_model_alone(
    session: HostSession,
) -> None:
    """Regression: the fused pass's real configuration went NaN with the invisible seed."""
    germinate(session, "r0c1", "conv_light", BlendOp.ADD)
    walk_to(session, "r0c1", Stage.TRAINING)
    before = evaluate(session.model, session.val_loader)
    with torch.no_grad():
        for p in session.model.slot("r0c1").seed_parameters():
            p.fill_(math.nan)

    found = probes(session.model)
    val = evaluate(session.model, session.val_loader, [{}, *(p.config for p in found)])
    (measured,) = contributions(found, val)

    assert (val.loss, val.accuracy) == (before.loss, before.accuracy)
    assert math.isnan(val.losses[1])  # the seed at alpha 1: garbage, and only there
    assert measured.is_prospective
    assert measured.value_pp == pytest.approx(-before.accuracy)  # it would lose every sample
    assert measured.value_pp < -5 * measured.stderr_pp


@pytest.mark.parametrize("blend", list(BlendOp), ids=lambda b: b.name)
@pytest.mark.parametrize("blueprint", blueprint_names("cnn"))
def test_an_identity_at_birth_seed_contributes_exactly_zero(
    session: HostSession, blueprint: str, blend: BlendOp
) -> None:
    germinate(session, "r0c1", blueprint, blend)
    walk_to(session, "r0c1", Stage.BLENDING)
    assert session.model.slot("r0c1").alpha > 0

    (measured,) = measure(session)

    assert measured == Contribution("r0c1", False, 0.0, 0.0)


def test_prospective_in_training_then_contribution_also_once_fossilized(
    session: HostSession,
) -> None:
    model = session.model
    germinate(session, "r0c1", "conv_light", BlendOp.ADD)
    walk_to(session, "r0c1", Stage.TRAINING)

    result = session.train_and_evaluate()
    assert [(c.slot_id, c.is_prospective) for c in result.contributions] == [("r0c1", True)]
    measured = model.slot("r0c1").measured
    assert measured.prospective == result.contributions[0].value_pp
    assert measured.prospective_stderr is not None
    assert measured.contribution is None

    walk_to(session, "r0c1", Stage.HOLDING)
    result = session.train_and_evaluate()
    assert [(c.slot_id, c.is_prospective) for c in result.contributions] == [("r0c1", False)]
    kept = model.slot("r0c1").measured.contribution
    assert kept == result.contributions[0].value_pp

    session.apply(FactoredAction(Op.FOSSILIZE, slot="r0c1"))
    assert model.slot("r0c1").stage == Stage.FOSSILIZED
    result = session.train_and_evaluate()
    # A fossil is still measured (rewards keep attributing to it), never prospectively.
    assert [(c.slot_id, c.is_prospective) for c in result.contributions] == [("r0c1", False)]
    assert model.slot("r0c1").measured.contribution == result.contributions[0].value_pp
    assert result.val.correct.shape[0] == 2  # the real model and the fossil removed
