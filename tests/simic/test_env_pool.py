"""Asynchronous env steps (issue 11): `submit` starts one env's step, `next_result` hands back
whichever finished first. A trainer's round must not depend on that order (each env is acted
for with its own state and generator, and telemetry goes out in (step, env) order), and a pool
refuses requests that would mix up an episode."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from same_training import assert_same_training, trained, without_wall_times

from esper.leyline import FactoredAction, IllegalActionError, Op, Tempo
from esper.nissa import MemorySink, TelemetryHub
from esper.simic.config import TrainingConfig
from esper.simic.env_pool import (
    EnvPool,
    LocalEnvPool,
    StepResult,
    VmapEnvPool,
    build_pool,
    env_config_for,
    lockstep,
)
from esper.simic.environment import MorphogeneticEnv
from esper.simic.trainer import VectorizedTrainer
from esper.tamiyo.features import Observation
from esper.tolaria import get_task
from esper.tolaria.data import DataSplits, Split

CONFIG = TrainingConfig.preset("digits").with_overrides(
    {"n_envs": 3, "episode_length": 4, "rounds": 2, "seed": 9}
)


class Scrambled:
    """A local pool that hands results back in a shuffled order: every queued step is played
    as soon as one is asked for, and a random finished one is returned."""

    def __init__(self, pool: EnvPool, seed: int) -> None:
        self.pool, self.rng = pool, random.Random(seed)
        self.n_envs, self.feature_spec = pool.n_envs, pool.feature_spec
        self.feature_specs = pool.feature_specs
        self.queued = 0
        self.finished: list[tuple[int, StepResult]] = []
        self.order: list[int] = []  # envs in the order they were handed back

    def reset(self, seeds: Sequence[int]) -> list[Observation]:
        return self.pool.reset(seeds)

    def submit(self, env: int, action: FactoredAction) -> None:
        self.pool.submit(env, action)
        self.queued += 1

    def next_result(self) -> tuple[int, StepResult]:
        for _ in range(self.queued):
            self.finished.append(self.pool.next_result())
        self.queued = 0
        env, result = self.finished.pop(self.rng.randrange(len(self.finished)))
        self.order.append(env)
        return env, result

    def step(self, actions: Sequence[FactoredAction]) -> list[StepResult]:
        return lockstep(self, actions)

    def take_events(self) -> list[tuple[int, Any]]:
        return []

    def close(self) -> None:
        self.pool.close()


def scrambled_training(digits: DataSplits, seed: int) -> tuple[Any, list[int]]:
    sink = MemorySink()
    pool = Scrambled(build_pool(CONFIG, digits), seed)
    trainer = VectorizedTrainer(CONFIG, pool, TelemetryHub([sink]))
    outcomes = [trainer.run_round().outcomes for _ in range(CONFIG.rounds)]
    events = [without_wall_times(e.to_dict()) for e in sink.events if e.type != "round"]
    return (trainer.network.state_dict(), outcomes, events), pool.order


def test_a_round_is_the_same_whatever_order_the_steps_finish_in(digits: DataSplits) -> None:
    in_turn = trained(CONFIG, digits)
    first, order = scrambled_training(digits, seed=1)
    second, other_order = scrambled_training(digits, seed=2)
    # the orders really differ from taking turns, and from each other
    assert order != [i % 3 for i in range(len(order))] and order != other_order
    assert_same_training(in_turn, first)
    assert_same_training(in_turn, second)
    epochs = [(e["round"], e["epoch"], e["env"]) for e in first[2] if e["type"] == "epoch"]
    assert epochs == sorted(epochs) and len(epochs) == 2 * 4 * 3  # in (round, step, env) order


def local_pool(digits: DataSplits, n: int = 3) -> LocalEnvPool:
    task = get_task("digits")
    configs = [env_config_for(CONFIG, i) for i in range(n)]
    return LocalEnvPool(lambda i: MorphogeneticEnv(task, digits, configs[i]), n)


def test_the_local_pool_plays_submitted_steps_in_order_and_refuses_mixups(
    digits: DataSplits,
) -> None:
    pool = local_pool(digits)
    pool.reset([1, 2])  # envs 0 and 1 in this episode
    with pytest.raises(ValueError, match="without a step in flight"):
        pool.next_result()
    pool.submit(1, FactoredAction.wait())
    pool.submit(0, FactoredAction.wait())
    with pytest.raises(ValueError, match="env 1 already has a step in flight"):
        pool.submit(1, FactoredAction.wait())
    with pytest.raises(ValueError, match="env 2 is not in this episode"):
        pool.submit(2, FactoredAction.wait())
    with pytest.raises(ValueError, match="reset while envs \\[0, 1\\] have steps in flight"):
        pool.reset([1, 2])
    assert [pool.next_result()[0] for _ in range(2)] == [1, 0]
    assert [r.epoch for r in pool.step([FactoredAction.wait()] * 2)] == [2, 2]


def _tiny(digits: DataSplits) -> DataSplits:
    """128 training images: two batches an epoch, so float rounding cannot grow far."""
    train = Split(digits.train.inputs[:128], digits.train.targets[:128])
    return DataSplits(
        train, digits.val, digits.test, digits.kind, digits.num_classes, digits.input_shape
    )


def test_the_vmap_pool_plays_the_local_pools_episodes(digits: DataSplits) -> None:
    """Scripted actions on 3 envs (two alike, one apart): the same rewards, observations and
    outcomes as stepping the envs in turn, to float tolerance (vmapped convolutions sum in
    another order)."""
    data, task = _tiny(digits), get_task("digits")
    configs = [env_config_for(CONFIG, i) for i in range(3)]
    pools = [
        kind(lambda i: MorphogeneticEnv(task, data, configs[i]), 3)
        for kind in (LocalEnvPool, VmapEnvPool)
    ]
    germinate = FactoredAction.germinate("r0c1", "conv_light", tempo=Tempo.FAST)
    advance = FactoredAction(Op.ADVANCE, slot="r0c1")
    wait = FactoredAction.wait()
    script = [[germinate, germinate, wait], [wait] * 3, [advance, advance, wait], [wait] * 3]
    played = []
    for pool in pools:
        pool.reset([4, 5, 6])
        played.append([pool.step(actions) for actions in script])
    for local, vmapped in zip(*played, strict=True):
        for a, b in zip(local, vmapped, strict=True):
            assert b.reward == pytest.approx(a.reward, abs=1e-3)
            assert np.allclose(a.observation.features, b.observation.features, atol=1e-3)
            assert (a.terminated, a.epoch, a.timing.keys()) == (
                b.terminated,
                b.epoch,
                b.timing.keys(),
            )
            assert (a.outcome is None) == (b.outcome is None)
    assert played[1][-1][0].outcome.grown == ("conv_light@r0c1",)


def test_the_vmap_pool_hands_back_steps_in_submission_order(digits: DataSplits) -> None:
    task = get_task("digits")
    configs = [env_config_for(CONFIG, i) for i in range(3)]
    pool = VmapEnvPool(lambda i: MorphogeneticEnv(task, _tiny(digits), configs[i]), 3)
    pool.reset([1, 2, 3])
    with pytest.raises(ValueError, match="without a step in flight"):
        pool.next_result()
    for env in (2, 0, 1):
        pool.submit(env, FactoredAction.wait())
    with pytest.raises(ValueError, match="env 0 already has a step in flight"):
        pool.submit(0, FactoredAction.wait())
    first = pool.next_result()[0]
    pool.submit(first, FactoredAction.wait())  # the next batch starts while this one drains
    assert [pool.next_result()[0] for _ in range(3)] == [0, 1, 2]
    assert [r.epoch for r in pool.step([FactoredAction.wait()] * 3)] == [2, 2, 3]


def test_a_failed_batch_leaves_the_vmap_pool_usable(digits: DataSplits) -> None:
    """An illegal action in one env of a batch left the env before it half-stepped: the next
    result asked for raised IndexError and a reset said steps were in flight."""
    task = get_task("digits")
    configs = [env_config_for(CONFIG, i) for i in range(2)]
    pool = VmapEnvPool(lambda i: MorphogeneticEnv(task, _tiny(digits), configs[i]), 2)
    pool.reset([1, 2])
    pool.submit(0, FactoredAction.wait())
    pool.submit(1, FactoredAction(Op.ADVANCE, slot="r0c1"))  # nothing planted: illegal
    with pytest.raises(IllegalActionError):
        pool.next_result()
    with pytest.raises(ValueError, match="without a step in flight"):
        pool.next_result()
    pool.reset([1, 2])
    assert [r.epoch for r in pool.step([FactoredAction.wait()] * 2)] == [1, 1]
