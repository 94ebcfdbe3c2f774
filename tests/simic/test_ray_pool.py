"""The Ray backend (issue 11): the same episodes as the local pool, an actor killed mid-episode
is replaced without changing the step, and a round runs on a cluster of several nodes (simulated
on this machine with Ray's own `cluster_utils.Cluster`)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from same_training import Training, assert_same_training, trained

from esper.leyline import FactoredAction
from esper.simic.config import TrainingConfig
from esper.simic.env_pool import LocalEnvPool, StepResult, env_config_for
from esper.simic.environment import MorphogeneticEnv
from esper.tolaria import DataOptions, get_task
from esper.tolaria.data import DataSplits

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from esper.simic.ray_pool import RayEnvPool  # noqa: E402

CONFIG = TrainingConfig.preset("digits").with_overrides(
    {"n_envs": 2, "episode_length": 3, "rounds": 2, "seed": 5, "workers": 2}
)
SEEDS = [21, 22]
PLAN = [
    [FactoredAction.germinate("r0c1", "conv_small"), FactoredAction.wait(), FactoredAction.wait()],
    [FactoredAction.germinate("r0c0", "norm"), FactoredAction.wait(), FactoredAction.wait()],
]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_training(digits: DataSplits) -> Training:
    return trained(CONFIG, digits)


def test_a_trainer_on_ray_actors_equals_one_on_the_local_pool(
    local_ray: None, digits: DataSplits
) -> None:
    """Three envs on two actors: actor 0 has two steps in flight at a time."""
    config = CONFIG.with_overrides({"n_envs": 3})
    assert_same_training(
        trained(config, digits), trained(config.updated({"backend": "ray"}), digits)
    )


def test_an_actor_killed_mid_episode_is_replaced_and_the_step_is_unchanged(
    local_ray: None, digits: DataSplits
) -> None:
    task = get_task("digits")
    configs = [env_config_for(CONFIG, i) for i in range(2)]
    local = LocalEnvPool(lambda i: MorphogeneticEnv(task, digits, configs[i]), 2)
    local.reset(SEEDS)
    expected = [local.step([PLAN[0][t], PLAN[1][t]]) for t in range(3)]

    pool = RayEnvPool("digits", DataOptions(), configs, workers=2)
    try:
        pool.reset(SEEDS)
        got: list[list[StepResult]] = [pool.step([PLAN[0][0], PLAN[1][0]])]
        os.kill(pool.pid(1), signal.SIGKILL)
        got += [pool.step([PLAN[0][t], PLAN[1][t]]) for t in (1, 2)]
        events = pool.take_events()
    finally:
        pool.close()
    for row, want in zip(got, expected, strict=True):
        for a, b in zip(row, want, strict=True):
            assert (a.reward, a.events, a.outcome) == (b.reward, b.events, b.outcome)
    assert [(env, e.worker, e.envs, e.failures, e.replayed_steps) for env, e in events] == [
        (1, 1, (1,), 1, 1)
    ]
    assert "actor died" in events[0][1].cause


def test_a_round_on_a_two_node_cluster_equals_the_local_one(
    digits: DataSplits, local_training: Training
) -> None:
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        configs = [env_config_for(CONFIG, i) for i in range(2)]
        pool = RayEnvPool("digits", DataOptions(), configs, workers=None, cpus=1)
        try:
            assert len({pool.node(0), pool.node(1)}) == 2  # one actor on each node
        finally:
            pool.close()
        config = CONFIG.updated({"backend": "ray", "ray_address": cluster.address})
        assert_same_training(local_training, trained(config, digits))
    finally:
        ray.shutdown()
        cluster.shutdown()
