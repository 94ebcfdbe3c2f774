"""The governor: when it calls a catastrophe, and a rollback in a running episode."""

import copy
import math

import numpy as np
import pytest
import torch

from esper.kasmina import CNNHost, MorphogeneticModel
from esper.leyline import (
    EpisodeOutcome,
    FactoredAction,
    Initiator,
    LifecycleEvent,
    Op,
    RollbackEvent,
    Stage,
    Tempo,
)
from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.tolaria import Governor, GovernorConfig, HostSession, get_task
from esper.tolaria.data import load_digits

DIGITS_CHANCE = math.log(10)
STORIES_CHANCE = math.log(256)


@pytest.fixture(scope="module")
def model() -> MorphogeneticModel:
    torch.manual_seed(0)
    return MorphogeneticModel(CNNHost())


def healthy(governor: Governor, model: MorphogeneticModel, losses: list[float]) -> None:
    for loss in losses:
        assert governor.diagnose(loss) is None
        governor.record_healthy(model, loss)


def test_non_finite_loss_is_a_catastrophe() -> None:
    governor = Governor(DIGITS_CHANCE)
    for loss in (math.nan, math.inf):
        reason = governor.diagnose(loss)
        assert reason is not None and "non-finite" in reason


def test_an_untrained_host_at_chance_is_not_a_collapse(model: MorphogeneticModel) -> None:
    governor = Governor(DIGITS_CHANCE)
    assert governor.diagnose(DIGITS_CHANCE) is None
    healthy(governor, model, [DIGITS_CHANCE * 1.01, DIGITS_CHANCE, DIGITS_CHANCE * 0.99])
    assert governor.diagnose(DIGITS_CHANCE) is None


def test_falling_back_to_chance_after_learning_is_a_collapse(model: MorphogeneticModel) -> None:
    governor = Governor(DIGITS_CHANCE)
    healthy(governor, model, [2.0, 1.0, 0.5])
    assert governor.diagnose(0.9 * DIGITS_CHANCE) is None  # bad, but above collapse_fraction
    reason = governor.diagnose(DIGITS_CHANCE)
    assert reason is not None and "collapse" in reason


def test_collapse_threshold_is_relative_to_the_task_chance_loss(
    model: MorphogeneticModel,
) -> None:
    """Loss 2.25 after 1.0: near chance for 10 classes (ln 10 = 2.30), far from it for 256."""
    digits, stories = Governor(DIGITS_CHANCE), Governor(STORIES_CHANCE)
    healthy(digits, model, [1.0])
    healthy(stories, model, [1.0])
    assert digits.diagnose(2.25) is not None
    assert stories.diagnose(2.25) is None


def test_learned_bar_is_relative_to_the_task_chance_loss(model: MorphogeneticModel) -> None:
    """Best 2.0 is 'learned' on 256 classes (< 0.7 x 5.55) but not on 10 (> 0.7 x 2.30)."""
    digits, stories = Governor(DIGITS_CHANCE), Governor(STORIES_CHANCE)
    healthy(digits, model, [2.0])
    healthy(stories, model, [2.0])
    assert digits.diagnose(0.96 * DIGITS_CHANCE) is None
    assert stories.diagnose(0.96 * STORIES_CHANCE) is not None


STEADY = [0.10, 0.11, 0.09, 0.10, 0.10]  # healthy history: mean 0.1, small spread
EXPLOSION = 0.5  # > 3 x mean and > mean + 6 sigma, but far below chance (no collapse)


def test_explosion_needs_three_consecutive_epochs(model: MorphogeneticModel) -> None:
    governor = Governor(DIGITS_CHANCE)
    healthy(governor, model, STEADY)
    assert governor.diagnose(EXPLOSION) is None
    assert governor.diagnose(EXPLOSION) is None
    reason = governor.diagnose(EXPLOSION)
    assert reason is not None and "explosion" in reason


def test_a_normal_epoch_resets_the_explosion_count(model: MorphogeneticModel) -> None:
    governor = Governor(DIGITS_CHANCE)
    healthy(governor, model, STEADY)
    assert [governor.diagnose(x) for x in (EXPLOSION, EXPLOSION, 0.1, EXPLOSION, EXPLOSION)] == [
        None
    ] * 5
    assert governor.diagnose(EXPLOSION) is not None


def test_explosions_are_not_judged_before_min_history(model: MorphogeneticModel) -> None:
    governor = Governor(DIGITS_CHANCE, GovernorConfig(min_history=5))
    healthy(governor, model, STEADY[:4])
    assert [governor.diagnose(EXPLOSION) for _ in range(5)] == [None] * 5


def test_sustained_explosion_is_caught_when_driven_like_the_session(
    model: MorphogeneticModel,
) -> None:
    """HostSession records every epoch `diagnose` passes as healthy. The first explosive epochs
    must not enter the healthy history (or the snapshot): their losses would inflate the mean
    and spread until the explosion no longer counts as one."""
    governor = Governor(STORIES_CHANCE)
    healthy(governor, model, STEADY)
    reasons = []
    for _ in range(5):
        reason = governor.diagnose(EXPLOSION)
        reasons.append(reason)
        if reason is None:
            governor.record_healthy(model, EXPLOSION)
    assert reasons[2] is not None and "explosion" in reasons[2]


def test_bad_chance_loss_is_refused() -> None:
    with pytest.raises(ValueError, match="chance_loss"):
        Governor(0.0)


# -- a rollback in a running episode ---------------------------------------------------------------


def test_non_finite_weight_mid_episode_rolls_back_and_the_episode_completes() -> None:
    env = MorphogeneticEnv(
        get_task("digits"), config=EnvConfig(episode_length=6, illegal_action="raise")
    )
    env.reset(seed=0)
    germinate = FactoredAction.germinate("r0c1", "conv_light", tempo=Tempo.FAST)
    env.step(germinate)
    env.step(FactoredAction.wait())
    model = env.session.model
    assert model.slot("r0c1").stage == Stage.TRAINING
    healthy_host = copy.deepcopy(model.host.state_dict())

    with torch.no_grad():
        next(model.host.parameters()).fill_(float("nan"))
    obs, reward, terminated, _, info = env.step(FactoredAction.wait())

    rollbacks = [r for r in info["events"] if isinstance(r, RollbackEvent)]
    assert len(rollbacks) == 1
    assert "non-finite" in rollbacks[0].reason
    assert rollbacks[0].pruned_slots == ("r0c1",)
    pruned = [
        r
        for r in info["events"]
        if isinstance(r, LifecycleEvent) and r.initiator == Initiator.GOVERNOR
    ]
    assert [(p.slot_id, p.from_stage, p.to_stage) for p in pruned] == [
        ("r0c1", Stage.TRAINING, Stage.PRUNED)
    ]
    assert model.slot("r0c1").stage == Stage.PRUNED
    for name, value in model.host.state_dict().items():
        assert torch.equal(value, healthy_host[name]), name  # back to the healthy snapshot
    assert not env.session.optimizer.optimizer.state  # momentum from the NaN epoch is gone
    assert info["reward_terms"]["rollback"] < 0
    assert math.isfinite(reward)
    assert np.isfinite(obs).all() and env.observation_space.contains(obs)

    while not terminated:
        _, _, terminated, _, info = env.step(FactoredAction.wait())
    outcome = info["outcome"]
    assert isinstance(outcome, EpisodeOutcome)
    assert math.isfinite(outcome.test_accuracy) and outcome.test_accuracy > 20
    assert outcome.seeds_pruned == 1


def test_after_a_rollback_a_recovering_host_is_not_rolled_back_again() -> None:
    """Regression: a host restored without its pruned seeds averages a high loss for an epoch
    or two; that recovery must not count as another collapse (it used to, every epoch)."""
    chance = math.log(10)
    governor = Governor(chance)
    model = MorphogeneticModel(CNNHost(widths=(2, 4)))
    for loss in (2.0, 1.0, 0.5, 0.4):
        assert governor.diagnose(loss) is None
        governor.record_healthy(model, loss)
    reason = governor.diagnose(2.5)
    assert reason is not None and "collapse" in reason
    governor.rollback(model, reason)
    assert governor.diagnose(2.5) is None  # recovering, not collapsing
    governor.record_healthy(model, 2.5)
    assert governor.diagnose(float("nan")) is not None  # non-finite is still caught at once
    for loss in (1.0, 0.5):
        assert governor.diagnose(loss) is None
        governor.record_healthy(model, loss)
    assert governor.diagnose(2.5) is not None  # learned again: collapse re-armed


# -- a seed fossilized since the last healthy snapshot ---------------------------------------------


def _fossilize_while_training(session: HostSession, slot_id: str) -> None:
    """Grow a conv seed to FOSSILIZED the way an env does (act, boundary, train an epoch); every
    epoch is healthy, so the governor's last snapshot holds the seed while it is HOLDING."""
    model = session.model
    session.apply(FactoredAction.germinate(slot_id, "conv_light", tempo=Tempo.FAST))
    slot = model.slot(slot_id)
    while not (slot.stage == Stage.HOLDING and slot.measured.contribution is not None):
        if slot.report().passes_advance_gate:
            session.apply(FactoredAction(Op.ADVANCE, slot=slot_id))
        session.boundary()
        assert session.train_and_evaluate().rollback_reason is None
    session.apply(FactoredAction(Op.FOSSILIZE, slot=slot_id))
    assert slot.stage == Stage.FOSSILIZED


def test_nan_in_a_seed_fossilized_since_the_snapshot_rolls_back_once() -> None:
    """Regression: such a fossil was neither restored (not in the snapshot) nor pruned (not on
    probation), so it kept its NaN and the host was rolled back every epoch to the episode's
    end. The governor removes it: the rollback returns to the host and fossils of the last
    healthy epoch, the state that trained healthily."""
    session = HostSession(get_task("digits"), load_digits())
    session.reset(0)
    _fossilize_while_training(session, "r0c1")
    model = session.model
    healthy_host = copy.deepcopy(model.host.state_dict())
    with torch.no_grad():
        for p in model.slot("r0c1").seed_parameters():
            p.fill_(math.nan)

    session.boundary()
    result = session.train_and_evaluate()

    assert result.rollback_reason is not None and "non-finite" in result.rollback_reason
    assert [(e.slot_id, e.from_stage, e.to_stage, e.initiator) for e in result.events] == [
        ("r0c1", Stage.FOSSILIZED, Stage.PRUNED, Initiator.GOVERNOR)
    ]
    for name, value in model.host.state_dict().items():
        assert torch.equal(value, healthy_host[name]), name
    assert session.optimizer.group_names() == ["host"]
    assert math.isfinite(result.val.loss)
    for _ in range(3):
        session.boundary()
        after = session.train_and_evaluate()
        assert after.rollback_reason is None
        assert math.isfinite(after.train.loss) and math.isfinite(after.val.loss)
    assert model.slot("r0c1").stage == Stage.EMBARGOED


def _fossil(model: MorphogeneticModel, slot_id: str) -> None:
    """Walk a seed to FOSSILIZED without training (no healthy epoch, so no snapshot, between)."""
    model.execute(FactoredAction.germinate(slot_id, "conv_light", tempo=Tempo.FAST))
    while model.slot(slot_id).stage != Stage.HOLDING:
        if model.slot(slot_id).report().passes_advance_gate:
            model.execute(FactoredAction(Op.ADVANCE, slot=slot_id))
        model.end_epoch()
        model.advance_boundary()
    model.slot(slot_id).measured.contribution = 1.0
    model.execute(FactoredAction(Op.FOSSILIZE, slot=slot_id))


def test_a_rollback_restores_the_fossils_of_the_snapshot_and_removes_the_others() -> None:
    torch.manual_seed(0)
    model = MorphogeneticModel(CNNHost(widths=(2, 4)))
    governor = Governor(DIGITS_CHANCE)
    _fossil(model, "r0c0")
    governor.record_healthy(model, 1.0)  # snapshot: the host and the fossil in r0c0
    kept = copy.deepcopy(model.slot("r0c0").state_dict())
    _fossil(model, "r0c1")  # fossilized since the snapshot
    with torch.no_grad():
        for slot in model.seed_slots():
            for p in slot.seed_parameters():
                p.fill_(math.nan)

    events = governor.rollback(model, "non-finite training loss (nan)")

    assert [(e.slot_id, e.from_stage, e.to_stage, e.initiator) for e in events] == [
        ("r0c1", Stage.FOSSILIZED, Stage.PRUNED, Initiator.GOVERNOR)
    ]
    assert events[0].reason == "governor rollback: non-finite training loss (nan)"
    assert model.slot("r0c0").stage == Stage.FOSSILIZED
    for name, value in model.slot("r0c0").state_dict().items():
        assert torch.equal(value, kept[name]), name
    assert torch.isfinite(model(torch.randn(4, 1, 8, 8))).all()


def test_a_rollback_before_any_snapshot_is_refused() -> None:
    with pytest.raises(RuntimeError, match="snapshot"):
        Governor(DIGITS_CHANCE).rollback(MorphogeneticModel(CNNHost(widths=(2, 4))), "nan")
