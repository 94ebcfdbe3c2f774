"""The process backend (issue 11): episodes in worker processes equal the local pool's, a
worker killed mid-round is replaced without changing the round, a worker that keeps failing
stops the run naming its envs, and an exception inside a worker is raised, not retried."""

from __future__ import annotations

import os
import signal
from dataclasses import asdict

import pytest
from same_training import assert_same_training, trained

from esper.leyline import FactoredAction, WorkerEvent
from esper.simic.config import TrainingConfig
from esper.simic.env_pool import LocalEnvPool, StepResult, env_config_for
from esper.simic.environment import MorphogeneticEnv
from esper.simic.workers import ProcessEnvPool, WorkerError
from esper.tolaria import DataOptions, get_task
from esper.tolaria.data import DataSplits

CONFIG = TrainingConfig.preset("digits").with_overrides(
    {"n_envs": 3, "episode_length": 3, "rounds": 2, "seed": 5}
)
SEEDS = [11, 12, 13]
PLAN = [
    [FactoredAction.germinate("r0c1", "conv_small"), FactoredAction.wait(), FactoredAction.wait()],
    [FactoredAction.wait()] * 3,
    [FactoredAction.germinate("r0c0", "norm"), FactoredAction.wait(), FactoredAction.wait()],
]


def process_pool(config: TrainingConfig = CONFIG, **options: float) -> ProcessEnvPool:
    configs = [env_config_for(config, i) for i in range(config.n_envs)]
    return ProcessEnvPool("digits", DataOptions(), configs, workers=2, **options)  # type: ignore[arg-type]


def local_results(digits: DataSplits) -> list[list[StepResult]]:
    task = get_task("digits")
    configs = [env_config_for(CONFIG, i) for i in range(CONFIG.n_envs)]
    pool = LocalEnvPool(lambda i: MorphogeneticEnv(task, digits, configs[i]), CONFIG.n_envs)
    pool.reset(SEEDS)
    return [pool.step([PLAN[i][t] for i in range(3)]) for t in range(3)]


def same(a: StepResult, b: StepResult) -> bool:
    """Equal apart from wall times."""
    return (
        a.reward == b.reward
        and a.reward_terms == b.reward_terms
        and a.events == b.events
        and a.outcome == b.outcome
        and (a.observation.features == b.observation.features).all()
        and (a.epoch, a.terminated) == (b.epoch, b.terminated)
    )


@pytest.fixture(scope="module")
def expected(digits: DataSplits) -> list[list[StepResult]]:
    return local_results(digits)


def test_a_trainer_on_worker_processes_equals_one_on_the_local_pool(digits: DataSplits) -> None:
    config = CONFIG.with_overrides({"workers": 2})
    local = trained(config, digits)
    assert_same_training(local, trained(config.updated({"backend": "process"}), digits))


def test_a_worker_killed_mid_episode_is_replaced_and_the_step_is_unchanged(
    expected: list[list[StepResult]],
) -> None:
    pool = process_pool()
    try:
        pool.reset(SEEDS)
        first = pool.step([PLAN[i][0] for i in range(3)])
        os.kill(pool.pid(0), signal.SIGKILL)  # envs 0 and 2
        second = pool.step([PLAN[i][1] for i in range(3)])
        third = pool.step([PLAN[i][2] for i in range(3)])
        events = pool.take_events()
    finally:
        pool.close()
    for got, want in zip([first, second, third], expected, strict=True):
        assert all(same(a, b) for a, b in zip(got, want, strict=True))
    assert [(env, e.worker, e.envs, e.cause, e.failures) for env, e in events] == [
        (0, 0, (0, 2), "killed by SIGKILL", 1)
    ]
    assert events[0][1].replayed_steps == 1  # the step before the one it died in
    assert isinstance(events[0][1], WorkerEvent) and asdict(events[0][1])


def test_a_worker_that_keeps_missing_its_deadline_stops_the_pool_naming_its_envs() -> None:
    pool = process_pool(max_failures=2)
    try:
        pool.reset(SEEDS)
        pool.deadline_s = 0.001  # no host epoch (nor the replay's reset) fits in a millisecond
        with pytest.raises(WorkerError, match=r"envs \[\d(, \d)?\] failed 3 times in a row"):
            pool.step([FactoredAction.wait()] * 3)
    finally:
        pool.close()


def test_an_exception_inside_a_worker_is_raised_not_retried() -> None:
    pool = process_pool()
    try:
        pool.reset(SEEDS)
        illegal = FactoredAction.germinate("r0c1", "no_such_blueprint")
        with pytest.raises(RuntimeError, match="raised IllegalActionError"):
            pool.step([illegal, FactoredAction.wait(), FactoredAction.wait()])
        assert pool.take_events() == []
    finally:
        pool.close()
