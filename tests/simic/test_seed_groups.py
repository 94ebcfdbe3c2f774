"""Envs that share an env seed, and advantages against the rest of one's seed group.

- `envs_per_seed` consecutive envs of a round get the same env seed;
- envs on one seed that take the same actions play exactly the same episode (the same
  rewards, step for step), on the local pool and in worker processes: what differs between
  them is what their actions did;
- a round with `advantage="group"` trains on the group-relative advantages (checked against
  the rollout it collected), and its critic still learns from GAE's returns.
"""

from __future__ import annotations

import pytest
import torch

import esper.simic.trainer as trainer_module
from esper.leyline import FactoredAction, Tempo
from esper.simic.advantages import gae, group_relative
from esper.simic.config import TrainingConfig
from esper.simic.env_pool import build_pool
from esper.simic.trainer import VectorizedTrainer
from esper.tolaria.data import DataSplits

CONFIG = TrainingConfig(n_envs=4, envs_per_seed=2, advantage="group", episode_length=3, rounds=1)


def test_consecutive_envs_share_a_seed(digits: DataSplits) -> None:
    trainer = VectorizedTrainer(CONFIG, build_pool(CONFIG, digits))
    for round_index in (0, 7):
        a, b, c, d = trainer.round_seeds(round_index)
        assert a == b and c == d and a != c
    assert TrainingConfig().envs_per_seed == 1  # by default every env has its own seed
    alone = VectorizedTrainer(CONFIG.model_copy(update={"envs_per_seed": 1}), trainer.pool)
    assert len(set(alone.round_seeds(0))) == 4


@pytest.mark.parametrize("backend", ["local", "process"])
def test_envs_on_one_seed_that_act_alike_play_the_same_episode(
    digits: DataSplits, backend: str
) -> None:
    config = CONFIG.model_copy(update={"backend": backend, "workers": 2})
    pool = build_pool(config, digits)
    try:
        seeds = VectorizedTrainer(config, pool).round_seeds(0)
        first = pool.reset(seeds)
        assert (first[0].features == first[1].features).all()
        germinate = FactoredAction.germinate("r0c1", "conv_light", tempo=Tempo.FAST)
        wait = FactoredAction.wait()
        # Envs 0 and 1 act alike; 2 and 3 (the other seed) do not.
        for actions in ([germinate, germinate, germinate, wait], [wait] * 4, [wait] * 4):
            results = pool.step(actions)
            assert results[0].reward == results[1].reward
            assert (results[0].observation.features == results[1].observation.features).all()
        assert results[2].reward != results[3].reward
    finally:
        pool.close()


def test_a_group_round_trains_on_group_relative_advantages(
    digits: DataSplits, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = VectorizedTrainer(CONFIG, build_pool(CONFIG, digits))
    seen: dict[str, torch.Tensor] = {}
    real_update = trainer_module.ppo_update

    def spy(network, optimizer, buffer, advantages, returns, *rest):  # type: ignore[no-untyped-def]
        seen.update(rewards=buffer.rewards, dones=buffer.dones, values=buffer.values)
        seen.update(advantages=advantages, returns=returns)
        return real_update(network, optimizer, buffer, advantages, returns, *rest)

    monkeypatch.setattr(trainer_module, "ppo_update", spy)
    trainer.run_round()
    expected = group_relative(seen["rewards"], seen["dones"], CONFIG.gamma, 2)
    torch.testing.assert_close(seen["advantages"], expected)
    _, gae_returns = gae(
        seen["rewards"],
        seen["values"],
        seen["dones"],
        torch.zeros(4),
        CONFIG.gamma,
        CONFIG.gae_lambda,
    )
    torch.testing.assert_close(seen["returns"], gae_returns)
