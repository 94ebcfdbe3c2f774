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


def test_a_worker_killed_with_several_steps_in_flight_replays_each_env_to_its_own_step(
    expected: list[list[StepResult]],
) -> None:
    """Worker 0 holds envs 0 and 2. It dies with a step of each in flight while env 0 is a
    step ahead of env 2: the replacement replays each env to where it was, then plays both
    lost steps; every result equals the local pool's."""
    pool = process_pool()
    got: dict[tuple[int, int], StepResult] = {}

    def take() -> None:
        env, result = pool.next_result()
        got[env, result.epoch - 1] = result

    try:
        pool.reset(SEEDS)
        for env in range(3):
            pool.submit(env, PLAN[env][0])
        for _ in range(3):
            take()
        pool.submit(0, PLAN[0][1])
        take()  # env 0 has played two steps, env 2 one
        pool.submit(0, PLAN[0][2])
        pool.submit(2, PLAN[2][1])
        os.kill(pool.pid(0), signal.SIGKILL)
        take()
        take()
        for env, t in ((2, 2), (1, 1), (1, 2)):
            pool.submit(env, PLAN[env][t])
            take()
        events = pool.take_events()
    finally:
        pool.close()
    assert sorted(got) == [(env, t) for env in range(3) for t in range(3)]
    assert all(same(got[env, t], expected[t][env]) for env, t in got)
    assert [(e.worker, e.cause) for _, e in events] == [(0, "killed by SIGKILL")]
    # env 0's two answered steps (three, had it answered the third before the kill landed)
    assert events[0][1].replayed_steps in (2, 3)


def test_the_process_pool_refuses_steps_that_would_mix_up_an_episode() -> None:
    pool = process_pool()
    try:
        pool.reset(SEEDS[:2])
        with pytest.raises(ValueError, match="env 2 is not in this episode"):
            pool.submit(2, FactoredAction.wait())
        pool.submit(0, FactoredAction.wait())
        with pytest.raises(ValueError, match="env 0 already has a step in flight"):
            pool.submit(0, FactoredAction.wait())
        assert pool.next_result()[0] == 0
        with pytest.raises(ValueError, match="without a step in flight"):
            pool.next_result()
    finally:
        pool.close()
