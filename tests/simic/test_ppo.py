"""The PPO round on a tiny digits pool (docs/architecture.md §7 "PPO", §10; issue 4 acceptance 4).

- at the start of each update, log-probs recomputed from the stored inputs equal the stored ones;
- the buffer holds exactly the normalized features the network saw, scaled by the normalizer as
  it was during the rollout (it is frozen there and updated only afterwards);
- an update raises the log-prob of an action with a positive advantage;
- advantages are normalized over the whole rollout, so with one env per minibatch an episode
  that beat the critic throughout is still reinforced;
- the KL early stop ends the update, and the KL it compared is the one reported;
- explained variance is that of the critic that produced the advantages;
- a head weighs in the entropy bonus as often as the policy uses it (issue 9);
- the learning rate anneals linearly to `lr_final` over `lr_anneal_rounds`, then holds;
- with action_space="simple" the rollout masks are the simple ones, and what it takes is in them.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from esper.leyline import (
    ALPHA_TARGETS,
    HEAD_ORDER,
    BlendOp,
    Curve,
    FactoredAction,
    Head,
    Op,
    Tempo,
)
from esper.simic.advantages import gae
from esper.simic.config import TrainingConfig
from esper.simic.env_pool import build_pool
from esper.simic.learned_policy import ObservationNormalizer, network_input
from esper.simic.normalizer import RunningNormalizer
from esper.simic.ppo import PPOSettings, UpdateMetrics, entropy_bonus, ppo_update
from esper.simic.rollout_buffer import RolloutBuffer
from esper.simic.trainer import RoundSummary, VectorizedTrainer
from esper.tamiyo.action_codec import decode, encode
from esper.tamiyo.policy_network import Evaluation, PolicyNetwork
from esper.tamiyo.slot_view import SLOT_CORE, SlotView
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


def _normalizer(state: dict) -> ObservationNormalizer:
    normalizer = ObservationNormalizer()
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
    during = _normalizer(played.normalizer_before_collect)
    steps = 2 * CONFIG.n_envs * CONFIG.episode_length  # two rounds folded in
    assert during.globals.count == steps
    assert during.slots.count == steps * len(trainer.pool.feature_spec.slot_ids)
    raw = buffer.raw
    expected_globals = torch.from_numpy(during.globals.normalize(raw["globals"]))
    assert torch.equal(buffer.inputs["globals"], expected_globals)
    core = buffer.inputs["slots"][..., :SLOT_CORE]
    assert torch.equal(core, torch.from_numpy(during.slots.normalize(raw["slots"])))
    # Frozen during the rollout: collecting did not touch the statistics.
    assert trainer.obs_normalizer.state_dict() == played.normalizer_before_collect
    # The raw inputs are the observations themselves: step 0 is the reset observation.
    seeds = trainer.round_seeds(trainer.round)
    observations = trainer.pool.reset(seeds)
    view = SlotView(trainer.pool.feature_spec)
    reset_globals, reset_core, _ = view.split(np.stack([o.features for o in observations]))
    assert np.array_equal(raw["globals"][0], reset_globals)
    assert np.array_equal(raw["slots"][0], reset_core)
    # Normalization is not the identity here, so the comparison above can tell them apart.
    assert not torch.equal(buffer.inputs["globals"], torch.from_numpy(raw["globals"]))


def test_each_round_folds_its_rollout_into_the_normalizer(played: Played) -> None:
    first, second = played.normalizer_after_round
    steps = CONFIG.n_envs * CONFIG.episode_length
    assert (first["globals"]["count"], second["globals"]["count"]) == (steps, 2 * steps)
    assert second["globals"]["mean"] != first["globals"]["mean"]
    assert second["slots"]["mean"] != first["slots"]["mean"]


def _scripted_buffer(
    network: PolicyNetwork, played: Played, actions: list[list[FactoredAction]]
) -> RolloutBuffer:
    """len(actions) steps of len(actions[0]) envs that all saw the reset observation at every
    step and chose actions[t][env]; log-probs are the network's own."""
    trainer = played.trainer
    spec = trainer.pool.feature_spec
    observation = trainer.pool.reset(trainer.round_seeds(0))[0]
    steps, n = len(actions), len(actions[0])
    raw, inputs, masks = network_input(
        [observation] * n, [trainer.views[0]] * n, trainer.obs_normalizer, trainer.padding
    )
    indices = torch.from_numpy(np.stack([[encode(spec, a) for a in row] for row in actions]))
    state = network.initial_state(n)
    shapes = {k: tuple(v.shape[1:]) for k, v in masks.items()}
    buffer = RolloutBuffer.allocate(steps, n, inputs, raw, shapes, state)
    for t in range(steps):
        buffer.store(
            t,
            inputs=inputs,
            raw=raw,
            masks=masks,
            actions=indices[t],
            log_probs=torch.zeros(n),
            values=torch.zeros(n),
        )
        buffer.record_outcome(t, torch.zeros(n), torch.full((n,), float(t == steps - 1)))
    buffer.log_probs = _log_probs(network, buffer)  # (T, n)
    return buffer


def _log_probs(network: PolicyNetwork, buffer: RolloutBuffer) -> torch.Tensor:
    with torch.no_grad():
        return network.evaluate(
            buffer.inputs, buffer.masks, buffer.actions, buffer.initial_state
        ).log_prob


def _update_with(
    network: PolicyNetwork, buffer: RolloutBuffer, advantages: torch.Tensor, settings: PPOSettings
) -> UpdateMetrics:
    """One update of `network` on a scripted buffer with given advantages (returns all 0)."""
    return ppo_update(
        network,
        torch.optim.Adam(network.parameters(), lr=1e-3),
        buffer,
        advantages,
        torch.zeros_like(advantages),
        RunningNormalizer((1,), clip=float("inf")),
        settings,
        torch.Generator().manual_seed(0),
    )


def test_an_update_raises_the_log_prob_of_a_positive_advantage_action(played: Played) -> None:
    network = copy.deepcopy(played.trainer.network)
    germinate = FactoredAction.germinate("r0c1", "conv_light", tempo=Tempo.FAST)
    buffer = _scripted_buffer(network, played, [[FactoredAction.wait(), germinate]])
    before = _log_probs(network, buffer)  # (1, 2)
    advantages = torch.tensor([[1.0, -1.0]])  # WAIT was good here, GERMINATE bad
    settings = PPOSettings(entropy_coef=0.0, value_coef=0.0, target_kl=None, update_epochs=4)
    _update_with(network, buffer, advantages, settings)
    after = _log_probs(network, buffer)
    assert after[0, 0] > before[0, 0] + 1e-3
    assert after[0, 1] < before[0, 1] - 1e-3


def test_with_one_env_per_minibatch_an_episode_that_beat_the_critic_throughout_is_reinforced(
    played: Played,
) -> None:
    """minibatch_envs=1 is the digits preset. Normalizing the advantages inside one env's
    episode would make them sum to zero there (here: all zero), and erase the signal that the
    whole plan did better or worse than the critic expected; they are normalized once over the
    rollout."""
    network = copy.deepcopy(played.trainer.network)
    germinate = FactoredAction.germinate("r0c1", "conv_light", tempo=Tempo.FAST)
    buffer = _scripted_buffer(network, played, [[FactoredAction.wait(), germinate]] * 2)
    before = _log_probs(network, buffer)  # (2, 2)
    advantages = torch.tensor([[1.0, -1.0], [1.0, -1.0]])  # env 0 beat the critic, env 1 did not
    settings = PPOSettings(
        entropy_coef=0.0, value_coef=0.0, target_kl=None, update_epochs=2, minibatch_envs=1
    )
    _update_with(network, buffer, advantages, settings)
    after = _log_probs(network, buffer)
    assert torch.all(after[:, 0] > before[:, 0] + 1e-3), (before, after)
    assert torch.all(after[:, 1] < before[:, 1] - 1e-3), (before, after)


def _advantages_and_returns(buffer: RolloutBuffer) -> tuple[torch.Tensor, torch.Tensor]:
    return gae(
        buffer.rewards,
        buffer.values,
        buffer.dones,
        torch.zeros(CONFIG.n_envs),
        CONFIG.gamma,
        CONFIG.gae_lambda,
    )


def _update_copy(played: Played, settings: PPOSettings) -> tuple[PolicyNetwork, UpdateMetrics]:
    trainer, buffer = played.trainer, played.buffer
    network = copy.deepcopy(trainer.network)
    advantages, returns = _advantages_and_returns(buffer)
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


def _rollout_kl(network: PolicyNetwork, buffer: RolloutBuffer) -> float:
    """KL(collecting policy || network) over the rollout, Schulman's k3 estimator."""
    log_ratio = _log_probs(network, buffer) - buffer.log_probs  # (T, N)
    return float((log_ratio.exp() - 1 - log_ratio).mean())


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


def test_the_reported_kl_is_the_one_the_early_stop_compares(played: Played) -> None:
    """The KL reported is that of the policy the update left, over the whole rollout: the
    number compared with 1.5 x target_kl, not a mean of the KLs seen before each step."""
    one_epoch, metrics = _update_copy(played, PPOSettings(target_kl=None, update_epochs=1))
    kl = _rollout_kl(one_epoch, played.buffer)
    assert kl > 0
    assert metrics.approx_kl == pytest.approx(kl, rel=1e-5)
    # A bar below what one epoch reaches: the update stops there and reports a KL above it.
    target_kl = kl / 3
    stopped, metrics = _update_copy(played, PPOSettings(target_kl=target_kl, update_epochs=4))
    assert metrics.epochs_run == 1
    assert metrics.approx_kl > 1.5 * target_kl
    assert metrics.approx_kl == pytest.approx(_rollout_kl(stopped, played.buffer), rel=1e-5)


def test_explained_variance_is_that_of_the_critic_that_produced_the_advantages(
    played: Played,
) -> None:
    """From the values collected in the rollout against the returns built from them, so it does
    not depend on how far the update then moved the critic."""
    buffer = played.buffer
    _, returns = _advantages_and_returns(buffer)
    expected = 1 - (returns - buffer.values).var() / returns.var()
    for epochs in (1, 4):
        _, metrics = _update_copy(played, PPOSettings(target_kl=None, update_epochs=epochs))
        assert metrics.explained_variance == pytest.approx(float(expected), abs=1e-6)


def _synthetic_evaluation(entropy: dict[Head, torch.Tensor], used: torch.Tensor) -> Evaluation:
    zeros = torch.zeros(used.shape[:-1])
    return Evaluation(log_prob=zeros, value=zeros, entropy=entropy, used=used)


def test_a_head_weighs_in_the_entropy_bonus_as_often_as_it_is_used() -> None:
    """20 steps of one env: the op head is used on every step, blueprint (a GERMINATE head) on
    one. Raising a head's entropy by d where it is used raises the bonus by weight x d: the
    weight is the head's frequency of use, so a rare head is not favoured."""
    steps, index = 20, {h: i for i, h in enumerate(HEAD_ORDER)}
    used = torch.zeros(steps, 1, len(HEAD_ORDER), dtype=torch.bool)  # (T, B, n_heads)
    used[:, :, index[Head.OP]] = True
    used[0, :, index[Head.BLUEPRINT]] = True
    base = {h: 0.5 * used[..., index[h]].float() for h in HEAD_ORDER}  # 0 where unused

    def bonus(raised: Head | None, d: float) -> float:
        entropy = dict(base)
        if raised is not None:
            entropy[raised] = base[raised] + d * used[..., index[raised]].float()
        return float(entropy_bonus(_synthetic_evaluation(entropy, used)))

    def weight(head: Head) -> float:
        return (bonus(head, 0.25) - bonus(None, 0.0)) / 0.25

    assert weight(Head.OP) == pytest.approx(1.0, rel=1e-5)
    assert weight(Head.BLUEPRINT) == pytest.approx(weight(Head.OP) / steps, rel=1e-5)
    assert weight(Head.SLOT) == 0.0  # never used: no weight at all


def test_the_learning_rate_anneals_linearly_then_holds(digits: DataSplits) -> None:
    config = TrainingConfig(n_envs=1, episode_length=2, lr=1e-3, lr_final=2e-4, lr_anneal_rounds=4)
    trainer = VectorizedTrainer(config, build_pool(config, digits))
    rates = []
    for round_index in (0, 1, 4, 9):
        trainer.round = round_index
        rates.append(trainer.learning_rate())
    assert rates == pytest.approx([1e-3, 8e-4, 2e-4, 2e-4])
    trainer.round = 2
    trainer.run_round()  # the update steps with the round's rate
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(6e-4)


def test_without_a_final_rate_the_learning_rate_is_constant(played: Played) -> None:
    assert played.trainer.learning_rate() == CONFIG.lr
    assert played.trainer.optimizer.param_groups[0]["lr"] == CONFIG.lr


def test_a_simple_rollout_masks_and_takes_only_simple_actions(digits: DataSplits) -> None:
    config = TrainingConfig(n_envs=2, episode_length=3, rounds=1, action_space="simple")
    trainer = VectorizedTrainer(config, build_pool(config, digits))
    buffer, *_ = trainer.collect(defaultdict(float))

    masks = buffer.masks  # what the network saw: head -> (T, N, ...)
    assert not masks["op"][..., Op.SET_ALPHA_TARGET].any()
    assert not masks["slot"][:, :, Op.SET_ALPHA_TARGET].any()
    only = {
        "blend": [b == BlendOp.ADD for b in BlendOp],
        "curve": [c == Curve.LINEAR for c in Curve],
    }
    for head, allowed in only.items():
        assert torch.equal(masks[head], torch.tensor(allowed).expand_as(masks[head])), head
    fast = torch.tensor([t == Tempo.FAST for t in Tempo])
    assert torch.equal(masks["tempo"][:, :, Op.GERMINATE], fast.expand(3, 2, -1))
    one = torch.tensor([a == 1.0 for a in ALPHA_TARGETS])
    assert not masks["alpha_target"][:, :, Op.GERMINATE][..., ~one].any()

    spec = trainer.pool.feature_spec
    taken = [decode(spec, a) for a in buffer.actions.reshape(-1, len(HEAD_ORDER)).numpy()]
    germinations = [a for a in taken if a.op == Op.GERMINATE]
    assert germinations  # a fresh policy plants on an empty host: the check below is not empty
    assert all(a.op != Op.SET_ALPHA_TARGET for a in taken)
    for a in germinations:
        assert (a.blend, a.tempo, a.alpha_target, a.curve) == (
            BlendOp.ADD,
            Tempo.FAST,
            1.0,
            Curve.LINEAR,
        ), a
