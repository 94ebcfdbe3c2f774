"""The PPO round on a tiny digits pool (DESIGN.md §7 "PPO", §10; issue 4 acceptance 4).

- at the start of each update, log-probs recomputed from the stored inputs equal the stored ones;
- the buffer holds exactly the normalized features the network saw, scaled by the normalizer as
  it was during the rollout (it is frozen there and updated only afterwards);
- an update raises the log-prob of an action with a positive advantage;
- the KL early stop ends the update.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from esper.leyline import FactoredAction, Tempo
from esper.simic.advantages import gae
from esper.simic.config import TrainingConfig
from esper.simic.env_pool import build_pool
from esper.simic.normalizer import RunningNormalizer
from esper.simic.ppo import PPOSettings, UpdateMetrics, ppo_update
from esper.simic.rollout_buffer import RolloutBuffer
from esper.simic.trainer import RoundSummary, VectorizedTrainer
from esper.tamiyo.action_codec import encode
from esper.tamiyo.policy_network import PolicyNetwork, stack_masks
from esper.tolaria.data import DataSplits

CONFIG = TrainingConfig(n_envs=2, episode_length=4, rounds=2)


@dataclass
class Played:
    trainer: VectorizedTrainer
    rounds: list[RoundSummary]
    normalizer_after_round: list[dict]  # obs normalizer state after each round
    normalizer_before_collect: dict
    buffer: RolloutBuffer  # collected (not trained on) after the rounds


@pytest.fixture(scope="module")
def played(digits: DataSplits) -> Played:
    """Two full rounds, then one more rollout collected with the normalizer state recorded."""
    trainer = VectorizedTrainer(CONFIG, build_pool(CONFIG, digits))
    rounds, states = [], []
    for _ in range(2):
        rounds.append(trainer.run_round())
        states.append(copy.deepcopy(trainer.obs_normalizer.state_dict()))
    before = copy.deepcopy(trainer.obs_normalizer.state_dict())
    buffer, *_ = trainer.collect(defaultdict(float))
    return Played(trainer, rounds, states, before, buffer)


def _normalizer(state: dict, size: int) -> RunningNormalizer:
    normalizer = RunningNormalizer((size,))
    normalizer.load_state_dict(state)
    return normalizer


def test_stored_log_probs_are_recomputed_at_the_start_of_each_update(played: Played) -> None:
    # The first round runs with an empty normalizer and a fresh network; the second with both
    # changed since, which is where a stale or re-derived input would show.
    for summary in played.rounds:
        assert summary.update.initial_log_prob_error <= 1e-5


def test_update_reports_finite_health_metrics(played: Played) -> None:
    update: UpdateMetrics = played.rounds[0].update
    for name in ("policy_loss", "value_loss", "approx_kl", "clip_fraction", "grad_norm"):
        assert np.isfinite(getattr(update, name)), name
    assert 1 <= update.epochs_run <= CONFIG.update_epochs
    assert set(update.entropy) == {
        "op",
        "slot",
        "blueprint",
        "blend",
        "tempo",
        "alpha_target",
        "curve",
    }
    assert 0 < update.entropy["op"] <= 1 + 1e-6


def test_buffer_holds_the_features_normalized_as_during_the_rollout(played: Played) -> None:
    trainer, buffer = played.trainer, played.buffer
    size = trainer.pool.feature_spec.size
    during = _normalizer(played.normalizer_before_collect, size)
    assert during.count == 2 * CONFIG.n_envs * CONFIG.episode_length  # two rounds folded in
    expected = torch.from_numpy(during.normalize(buffer.raw_features))
    assert torch.equal(buffer.features, expected)
    # Frozen during the rollout: collecting did not touch the statistics.
    assert trainer.obs_normalizer.state_dict() == played.normalizer_before_collect
    # The raw features are the observations themselves: step 0 is the reset observation.
    seeds = trainer.round_seeds(trainer.round)
    observations = trainer.pool.reset(seeds, trainer.round)
    assert np.array_equal(buffer.raw_features[0], np.stack([o.features for o in observations]))
    # Normalization is not the identity here, so the comparison above can tell them apart.
    assert not torch.equal(buffer.features, torch.from_numpy(buffer.raw_features))


def test_each_round_folds_its_rollout_into_the_normalizer(played: Played) -> None:
    first, second = played.normalizer_after_round
    steps = CONFIG.n_envs * CONFIG.episode_length
    assert (first["count"], second["count"]) == (steps, 2 * steps)
    assert second["mean"] != first["mean"]


def _one_step_buffer(
    network: PolicyNetwork, played: Played, actions: list[FactoredAction]
) -> RolloutBuffer:
    """One step of len(actions) envs that all saw the same observation and chose `actions`."""
    trainer = played.trainer
    spec = trainer.pool.feature_spec
    observation = trainer.pool.reset(trainer.round_seeds(0), 0)[0]
    n = len(actions)
    features = torch.from_numpy(np.stack([observation.features] * n))
    masks = {k: torch.from_numpy(v) for k, v in stack_masks([observation.masks] * n).items()}
    indices = torch.from_numpy(np.stack([encode(spec, a) for a in actions]))
    state = network.initial_state(n)
    shapes = {k: tuple(v.shape[1:]) for k, v in masks.items()}
    buffer = RolloutBuffer.allocate(1, n, spec.size, shapes, state)
    with torch.no_grad():
        evaluation = network.evaluate(
            features.unsqueeze(0),
            {k: v.unsqueeze(0) for k, v in masks.items()},
            indices.unsqueeze(0),
            state,
        )
    buffer.store(
        0,
        features=features,
        raw_features=features.numpy(),
        masks=masks,
        actions=indices,
        log_probs=evaluation.log_prob[0],
        values=torch.zeros(n),
    )
    buffer.record_outcome(0, torch.zeros(n), torch.ones(n))
    return buffer


def _log_probs(network: PolicyNetwork, buffer: RolloutBuffer) -> torch.Tensor:
    with torch.no_grad():
        return network.evaluate(
            buffer.features, buffer.masks, buffer.actions, buffer.initial_state
        ).log_prob


def test_an_update_raises_the_log_prob_of_a_positive_advantage_action(played: Played) -> None:
    network = copy.deepcopy(played.trainer.network)
    germinate = FactoredAction.germinate("r0c1", "conv_light", tempo=Tempo.FAST)
    buffer = _one_step_buffer(network, played, [FactoredAction.wait(), germinate])
    before = _log_probs(network, buffer)  # (1, 2)
    advantages = torch.tensor([[1.0, -1.0]])  # WAIT was good here, GERMINATE bad
    settings = PPOSettings(entropy_coef=0.0, value_coef=0.0, target_kl=None, update_epochs=4)
    ppo_update(
        network,
        torch.optim.Adam(network.parameters(), lr=1e-3),
        buffer,
        advantages,
        torch.zeros(1, 2),
        RunningNormalizer((1,), clip=float("inf")),
        settings,
        torch.Generator().manual_seed(0),
    )
    after = _log_probs(network, buffer)
    assert after[0, 0] > before[0, 0] + 1e-3
    assert after[0, 1] < before[0, 1] - 1e-3


def _update_copy(played: Played, settings: PPOSettings) -> tuple[PolicyNetwork, UpdateMetrics]:
    trainer, buffer = played.trainer, played.buffer
    network = copy.deepcopy(trainer.network)
    advantages, returns = gae(
        buffer.rewards,
        buffer.values,
        buffer.dones,
        torch.zeros(CONFIG.n_envs),
        CONFIG.gamma,
        CONFIG.gae_lambda,
    )
    metrics = ppo_update(
        network,
        torch.optim.Adam(network.parameters(), lr=CONFIG.lr, eps=CONFIG.adam_eps),
        buffer,
        advantages,
        returns,
        trainer.return_normalizer,
        settings,
        torch.Generator().manual_seed(0),
    )
    return network, metrics


def test_without_a_kl_target_every_epoch_runs(played: Played) -> None:
    _, metrics = _update_copy(played, PPOSettings(target_kl=None, update_epochs=4))
    assert metrics.epochs_run == 4


def test_a_tiny_kl_target_stops_after_the_first_epoch(played: Played) -> None:
    """Any update moves the policy by more than 1e-12 nats: the update stops after one epoch,
    and the policy is the one a single epoch produces."""
    stopped, metrics = _update_copy(played, PPOSettings(target_kl=1e-12, update_epochs=4))
    one_epoch, _ = _update_copy(played, PPOSettings(target_kl=None, update_epochs=1))
    for (name, a), b in zip(
        stopped.state_dict().items(), one_epoch.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), f"{name}: a step past the KL target was applied"
    assert metrics.epochs_run == 1
