"""The governor: when it calls a catastrophe, and a rollback in a running episode."""

import copy
import math

import numpy as np
import pytest
import torch

from esper.kasmina import CNNHost, MorphogeneticModel
from esper.leyline import EpisodeOutcome, FactoredAction, Stage, Tempo
from esper.nissa import MemorySink, TelemetryHub
from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.tolaria import Governor, GovernorConfig, get_task

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
    sink = MemorySink()
    env = MorphogeneticEnv(
        get_task("digits"), config=EnvConfig(episode_length=6), hub=TelemetryHub([sink])
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

    rollbacks = [e for e in sink.events if e.type == "governor"]
    assert len(rollbacks) == 1
    assert "non-finite" in rollbacks[0].payload["reason"]
    assert rollbacks[0].payload["pruned_slots"] == ["r0c1"]
    pruned = [
        e.payload
        for e in sink.events
        if e.type == "lifecycle" and e.payload["initiator"] == "governor"
    ]
    assert [(p["slot_id"], p["from_stage"], p["to_stage"]) for p in pruned] == [
        ("r0c1", "TRAINING", "PRUNED")
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
