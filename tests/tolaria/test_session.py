"""HostSession: an episode depends only on its seed and actions, not on other sessions."""

import math

import numpy as np
import pytest
import torch

from esper.leyline import FactoredAction, Stage
from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.tolaria import HostSession, get_task
from esper.tolaria.data import load_digits


def _episode(session: HostSession, seed: int, epochs: int) -> list[float]:
    """Germinate a conv seed at once, then train `epochs` epochs: the validation losses."""
    session.reset(seed)
    session.apply(FactoredAction.germinate("r0c0", "conv_light"))
    losses = []
    for _ in range(epochs):
        session.boundary()
        losses.append(session.train_and_evaluate().val.loss)
    return losses


def test_interleaved_sessions_match_sessions_run_alone() -> None:
    task, data = get_task("digits"), load_digits()
    a, b = HostSession(task, data), HostSession(task, data)
    alone = _episode(a, seed=3, epochs=2)
    a.reset(3)
    a.apply(FactoredAction.germinate("r0c0", "conv_light"))
    seed_weights = [p.detach().clone() for p in a.model.slot("r0c0").seed.parameters()]

    # Interleave: b's reset and plant between a's reset and a's plant.
    a.reset(3)
    b.reset(4)
    b.apply(FactoredAction.germinate("r0c0", "conv_light"))
    a.apply(FactoredAction.germinate("r0c0", "conv_light"))
    interleaved = [p.detach().clone() for p in a.model.slot("r0c0").seed.parameters()]
    assert all(torch.equal(x, y) for x, y in zip(seed_weights, interleaved, strict=True))
    assert _episode(a, seed=3, epochs=2) == alone


def test_a_session_leaves_the_global_rng_alone() -> None:
    session = HostSession(get_task("digits"), load_digits())
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _episode(session, seed=0, epochs=3)  # covers G1, which probes the seed with random input
    assert torch.equal(torch.rand(3), expected)


def _training_seed_gone_nan(session: HostSession) -> None:
    """Plant a conv seed, pass its G1 epoch, then fill its weights with NaN (TRAINING)."""
    session.apply(FactoredAction.germinate("r0c1", "conv_light"))
    session.boundary()
    session.train_and_evaluate()
    session.boundary()
    slot = session.model.slot("r0c1")
    assert slot.stage == Stage.TRAINING
    with torch.no_grad():
        for p in slot.seed_parameters():
            p.fill_(math.nan)


def test_a_training_seed_with_nan_weights_leaves_the_epoch_finite() -> None:
    """Regression: the fused validation pass went NaN with the invisible seed and the tracker
    raised, ending the run. The host never sees the seed, so nothing is rolled back."""
    session = HostSession(get_task("digits"), load_digits())
    session.reset(0)
    _training_seed_gone_nan(session)

    result = session.train_and_evaluate()

    assert result.rollback_reason is None
    assert math.isfinite(result.train.loss) and math.isfinite(result.val.loss)
    (measured,) = result.contributions
    assert measured.is_prospective
    assert measured.value_pp == pytest.approx(-result.val.accuracy)  # clearly harmful
    report = session.model.slot("r0c1").report()
    assert report.gradient_ratio == 0.0  # its NaN gradients carry nothing it could learn from
    assert not report.passes_advance_gate


def test_an_env_step_with_a_nan_training_seed_gives_a_finite_observation() -> None:
    env = MorphogeneticEnv(
        get_task("digits"), config=EnvConfig(episode_length=4, illegal_action="raise")
    )
    env.reset(seed=0)
    env.step(FactoredAction.germinate("r0c1", "conv_light"))
    env.step(FactoredAction.wait())
    slot = env.session.model.slot("r0c1")
    assert slot.stage == Stage.TRAINING
    with torch.no_grad():
        for p in slot.seed_parameters():
            p.fill_(math.nan)

    obs, reward, _, _, info = env.step(FactoredAction.wait())

    assert math.isfinite(info["observation"].metrics.val_loss)
    assert math.isfinite(reward)
    assert np.isfinite(obs).all() and env.observation_space.contains(obs)
